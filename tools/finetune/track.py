"""Run tracking: one directory per fine-tuning run, a JSON record and TensorBoard events.

A run directory holds ``run.json`` (:class:`FinetuneRun`: settings, data hash, losses,
timings, eval scores, files), ``tensorboard/`` (event files from tensorboardX, which only
writes files: no grpc or web-server dependencies, unlike the ``tensorboard`` package),
``checkpoint/`` (the last resumable state), ``adapter/`` (the final PEFT adapter) and,
once exported, ``adapter.gguf``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RECORD_NAME = "run.json"
RECORD_VERSION = 1

Status = Literal["created", "training", "trained", "exported"]


class RunFileError(ValueError):
    """A run directory or its record is missing or unreadable."""


class LossPoint(BaseModel):
    """One logged loss."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=0)
    loss: float


class EvalScore(BaseModel):
    """One model's result on an eval corpus."""

    model_config = ConfigDict(extra="forbid")

    corpus: str
    passed: int = Field(ge=0)
    total: int = Field(ge=0)
    rate: float = Field(ge=0, le=1)
    eval_run: str | None = Field(None, description="The eval harness's run record file.")


class FinetuneRun(BaseModel):
    """The JSON record of one fine-tuning run (``run.json``)."""

    model_config = ConfigDict(extra="forbid")

    version: int = RECORD_VERSION
    run_id: str
    created: datetime
    status: Status = "created"
    base_gguf: str = Field(description="The GGUF the run started from (and serves with).")
    base_hf_dir: str = Field(description="Its transformers copy the adapter was trained on.")
    dataset: str
    data_sha256: str
    n_train: int = Field(ge=0)
    n_validation: int = Field(ge=0)
    settings: dict[str, Any] = Field(description="The finetune settings of the run.")
    device: str = "cpu"
    quantised_training: str = Field(
        "no", description="QLoRA (4-bit base) or why not (it needs a GPU and bitsandbytes)."
    )
    trainable_params: int = 0
    total_steps: int = 0
    steps_done: int = 0
    train_loss: list[LossPoint] = Field(default_factory=list)
    validation_loss: list[LossPoint] = Field(default_factory=list)
    seconds_training: float = 0.0
    seconds_per_step: float | None = None
    resumed_from_step: list[int] = Field(default_factory=list)
    adapter_dir: str | None = None
    adapter_gguf: str | None = None
    eval: dict[str, EvalScore] = Field(
        default_factory=dict, description="Scores keyed 'base' and 'tuned'."
    )


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: UTC time to the second plus 4 random hex digits."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()


def save_record(run: FinetuneRun, run_dir: Path) -> Path:
    """Write ``run.json`` atomically (a crash never leaves half a record)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RECORD_NAME
    with tempfile.NamedTemporaryFile(
        "w", dir=run_dir, suffix=".tmp", delete=False, encoding="utf-8"
    ) as tmp:
        tmp.write(run.model_dump_json(indent=2))
    os.replace(tmp.name, path)
    return path


def load_record(run_dir: Path) -> FinetuneRun:
    """Read a run's ``run.json``.

    Raises:
        RunFileError: It is missing or not a valid record.
    """
    path = run_dir / RECORD_NAME
    try:
        return FinetuneRun.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError:
        raise RunFileError(f"no run record at {path}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RunFileError(f"{path}: not a run record ({where}: {first['msg']})") from None


def list_runs(runs_dir: Path) -> list[FinetuneRun]:
    """Every readable run under ``runs_dir``, oldest first (unreadable ones are skipped)."""
    if not runs_dir.is_dir():
        return []
    runs = []
    for child in sorted(runs_dir.iterdir()):
        if (child / RECORD_NAME).is_file():
            try:
                runs.append(load_record(child))
            except RunFileError:
                continue
    return runs


def find_run(runs_dir: Path, given: str | None) -> Path:
    """A run directory from an id, an id prefix, a path, or None for the newest.

    Raises:
        RunFileError: No run matches, or a prefix matches several.
    """
    if given and Path(given).is_dir():
        return Path(given)
    ids = [r.run_id for r in list_runs(runs_dir)]
    if not ids:
        raise RunFileError(f"no fine-tuning runs in {runs_dir}")
    if given is None:
        return runs_dir / ids[-1]
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise RunFileError(f"{found} in {runs_dir} match {given!r}")
    return runs_dir / matches[0]


class Tracker:
    """Writes a run's scalars to TensorBoard and keeps its record on disk."""

    def __init__(self, run: FinetuneRun, run_dir: Path) -> None:
        from tensorboardX import SummaryWriter

        self.run, self.run_dir = run, run_dir
        self.writer = SummaryWriter(logdir=str(run_dir / "tensorboard"))
        save_record(run, run_dir)

    def start(self) -> None:
        """Log the settings and data hash as text once (TensorBoard's Text tab)."""
        self.writer.add_text(
            "run",
            f"dataset `{self.run.dataset}` sha256 `{self.run.data_sha256}`\n\n"
            f"```\n{json.dumps(self.run.settings, indent=2)}\n```",
            global_step=self.run.steps_done,
        )

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Log one scalar (``loss/train``, ``loss/validation``, ``eval/...``)."""
        self.writer.add_scalar(tag, value, step)

    def save(self) -> None:
        """Flush the events and write the record."""
        self.writer.flush()
        save_record(self.run, self.run_dir)

    def close(self) -> None:
        """Flush and close the event file."""
        self.save()
        self.writer.close()
