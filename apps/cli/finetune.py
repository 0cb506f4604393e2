"""``assistant finetune``: prepare data, train a LoRA adapter, judge it, export it, list runs.

The stages, each its own command so a long one can be rerun alone::

    assistant finetune prepare   # validate + split the dataset, convert the base model
    assistant finetune train     # a new run (or --resume RUN) under <data_dir>/finetune/runs
    assistant finetune export    # the adapter as a GGUF LoRA for llama.cpp
    assistant finetune eval      # base vs tuned on the dataset's held-out corpus
    assistant finetune runs      # every run: steps, losses, scores

Torch, transformers and peft are imported by the commands that need them, so
``assistant --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from apps.cli.console import cli_settings, err, out
from graph.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from tools.finetune.track import FinetuneRun

finetune_app = typer.Typer(
    help="Fine-tune the model with LoRA: prepare, train, export, eval, runs.",
    no_args_is_help=True,
)

DEFAULT_DATASET = REPO_ROOT / "evals" / "finetune" / "brackenfield.jsonl"
EVAL_SUFFIX = ".eval.yaml"

DatasetOption = Annotated[
    Path,
    typer.Option("--dataset", "-d", help="Chat-format JSONL (one conversation per line)."),
]
BaseOption = Annotated[
    str,
    typer.Option(
        "--base",
        help="The base GGUF: smollm2 (SmolLM2-135M-Instruct, the quick path), default "
        "(Qwen2.5-Coder-1.5B-Instruct) or a GGUF path.",
    ),
]
RunArgument = Annotated[
    str | None,
    typer.Argument(help="Run id (or prefix) or directory; none = the newest run.", metavar="RUN"),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _runs_dir(settings: Settings) -> Path:
    return settings.finetune.runs_dir or settings.data_dir / "finetune" / "runs"


def _base_gguf(base: str, settings: Settings) -> Path:
    from tools.models.files import (
        DEFAULT_MODEL,
        ModelFileError,
        prepare_split_model,
        smollm2_path,
    )

    try:
        if base == "smollm2":
            return smollm2_path()
        if base == "default":
            return prepare_split_model(settings.cache_dir / "models", DEFAULT_MODEL)
    except ModelFileError as exc:
        raise _fail(str(exc)) from None
    path = Path(base).expanduser()
    if not path.is_file():
        raise _fail(f"--base: no such GGUF file: {base} (or use smollm2 / default)")
    return path.resolve()


def _settings_with(settings: Settings, **finetune: object) -> Settings:
    from graph.settings import SettingsError, load_settings

    given = {k: v for k, v in finetune.items() if v is not None}
    merged = {**settings.model_dump(), "finetune": {**settings.finetune.model_dump(), **given}}
    try:
        return load_settings(**merged)
    except SettingsError as exc:
        raise _fail(str(exc).replace("\n", " ")) from None


@finetune_app.command("prepare")
def prepare_command(
    dataset: DatasetOption = DEFAULT_DATASET,
    base: BaseOption = "smollm2",
) -> None:
    """Validate the dataset (one error per bad line), show its split, convert the base model.

    Exit status 2 when the dataset has bad lines.
    """
    from tools.finetune.data import DatasetError, dataset_hash, load_dataset, split
    from tools.finetune.train import TrainError, prepare_base

    settings = cli_settings()
    cfg = settings.finetune
    if not dataset.is_file():
        raise _fail(f"no such dataset file: {dataset}")
    try:
        examples = load_dataset(dataset)
    except DatasetError as exc:
        for problem in exc.problems:
            err.print(escape(problem), soft_wrap=True, highlight=False)
        raise _fail(f"{len(exc.problems)} bad line(s) in {dataset}") from None
    train, validation = split(examples, cfg.validation_fraction, cfg.seed)
    out.print(
        f"{len(examples)} examples: {len(train)} train, {len(validation)} validation "
        f"(seed {cfg.seed}); sha256 {dataset_hash(dataset)[:16]}",
        highlight=False,
    )
    corpus = dataset.with_name(dataset.stem + EVAL_SUFFIX)
    out.print(
        f"eval corpus: {corpus if corpus.is_file() else '(none beside the dataset)'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    gguf = _base_gguf(base, settings)
    try:
        hf_dir = prepare_base(gguf, settings.cache_dir)
    except TrainError as exc:
        raise _fail(str(exc), 1) from None
    out.print(f"base model: {gguf.name} -> {hf_dir}", markup=False, highlight=False, soft_wrap=True)


@finetune_app.command("train")
def train_command(
    dataset: DatasetOption = DEFAULT_DATASET,
    base: BaseOption = "smollm2",
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="Continue this run (id, prefix or directory)."),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
) -> None:
    """Train a LoRA adapter (CPU), checkpointing as it goes; --resume continues a run.

    Options override the [finetune] settings for a new run; a resumed run keeps its own.
    """
    from tools.finetune.data import DatasetError
    from tools.finetune.track import RunFileError, find_run, load_record
    from tools.finetune.train import TrainError, new_run, prepare_base, train

    settings = _settings_with(
        cli_settings(),
        max_steps=max_steps,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
    )
    runs_dir = _runs_dir(settings)
    if resume is not None:
        try:
            run_dir = find_run(runs_dir, resume)
        except RunFileError as exc:  # as `finetune export` and `eval` say it: exit 2
            raise _fail(str(exc)) from None
    try:
        if resume is not None:
            run = load_record(run_dir)
            if run.status != "training":
                raise _fail(f"run {run.run_id} is {run.status}; nothing to resume")
        else:
            if not dataset.is_file():
                raise _fail(f"no such dataset file: {dataset}")
            gguf = _base_gguf(base, settings)
            hf_dir = prepare_base(gguf, settings.cache_dir)
            run, run_dir, _, _ = new_run(settings.finetune, dataset, gguf, hf_dir, runs_dir)
        err.print(
            f"run {run.run_id}: {run.n_train} train / {run.n_validation} validation examples, "
            f"{run.total_steps} steps; QLoRA {quantisation()}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        run = train(run, run_dir, resume=resume is not None)
    except DatasetError as exc:
        for problem in exc.problems:
            err.print(escape(problem), soft_wrap=True, highlight=False)
        raise _fail(f"{len(exc.problems)} bad line(s) in {dataset}") from None
    except (TrainError, RunFileError) as exc:
        raise _fail(str(exc), 1) from None
    _print_run_summary(run)
    out.print(f"run directory: {run_dir}", markup=False, highlight=False, soft_wrap=True)


def quantisation() -> str:
    """One line on QLoRA: used, or why not."""
    from tools.finetune.train import quantisation_note

    return quantisation_note()


def _print_run_summary(run: FinetuneRun) -> None:
    first = run.train_loss[0].loss if run.train_loss else None
    last = run.train_loss[-1].loss if run.train_loss else None
    val = run.validation_loss
    parts = [f"{run.steps_done}/{run.total_steps} steps"]
    if first is not None and last is not None:
        parts.append(f"train loss {first:.3f} -> {last:.3f}")
    if val:
        parts.append(f"validation loss {val[0].loss:.3f} -> {val[-1].loss:.3f}")
    if run.seconds_per_step is not None:
        parts.append(f"{run.seconds_per_step:.2f} s/step")
    out.print(f"{run.run_id} ({run.status}): " + ", ".join(parts), markup=False, highlight=False)


def _export(run: FinetuneRun, run_dir: Path, outtype: str = "f16") -> Path:
    from tools.finetune.export import ExportError, export_adapter
    from tools.finetune.track import save_record

    if run.adapter_dir is None:
        raise _fail(f"run {run.run_id} has no trained adapter yet ({run.status})")
    try:
        path = export_adapter(
            Path(run.adapter_dir),
            Path(run.base_hf_dir),
            run_dir / "adapter.gguf",
            outtype=outtype,
        )
    except ExportError as exc:
        raise _fail(str(exc), 1) from None
    run.adapter_gguf = str(path)
    run.status = "exported"
    save_record(run, run_dir)
    return path


@finetune_app.command("export")
def export_command(
    run_id: RunArgument = None,
    outtype: Annotated[
        str, typer.Option("--outtype", help="f32, f16, bf16 or q8_0 adapter weights.")
    ] = "f16",
) -> None:
    """Convert a run's adapter to a GGUF LoRA and print the settings that serve it."""
    from tools.finetune.track import RunFileError, find_run, load_record

    settings = cli_settings()
    if outtype not in ("f32", "f16", "bf16", "q8_0"):
        raise _fail(f"--outtype must be f32, f16, bf16 or q8_0, not {outtype!r}")
    try:
        run_dir = find_run(_runs_dir(settings), run_id)
        run = load_record(run_dir)
    except RunFileError as exc:
        raise _fail(str(exc)) from None
    path = _export(run, run_dir, outtype)
    out.print(f"adapter: {path}", markup=False, highlight=False, soft_wrap=True)
    out.print(
        "serve it (chat, ui, serve, the dev server):\n"
        f"  ASSISTANT_MODEL__GGUF_PATH={run.base_gguf} ASSISTANT_MODEL__LORA_PATH={path} "
        "assistant chat",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@finetune_app.command("eval")
def eval_command(
    run_id: RunArgument = None,
    corpus: Annotated[
        list[str] | None,
        typer.Option(
            "--corpus",
            "-c",
            help="Corpus names (evals/corpora) or files, repeatable; none = the dataset's "
            "<name>.eval.yaml.",
        ),
    ] = None,
) -> None:
    """Run the held-out corpus on the base model and on the tuned one (greedy), and compare.

    Both eval run records are saved with the other eval runs, so `assistant eval compare`
    shows them side by side; the scores go into the run's record and TensorBoard.
    """
    from evals.corpus import CORPORA_DIR, EvalError, EvalModelError, load_corpora
    from evals.records import CaseResult, default_runs_dir, save_run
    from evals.runner import run_evals
    from tools.finetune.track import EvalScore, RunFileError, Tracker, find_run, load_record

    settings = cli_settings()
    try:
        run_dir = find_run(_runs_dir(settings), run_id)
        run = load_record(run_dir)
    except RunFileError as exc:
        raise _fail(str(exc)) from None
    names = corpus or [str(Path(run.dataset).with_name(Path(run.dataset).stem + EVAL_SUFFIX))]
    try:
        corpora = load_corpora(names, CORPORA_DIR)
    except EvalError as exc:
        raise _fail(str(exc)) from None
    lora = Path(run.adapter_gguf) if run.adapter_gguf else _export(run, run_dir)
    eval_runs = default_runs_dir(settings)
    paths: dict[str, str] = {}
    for label, lora_path in (("base", None), ("tuned", lora)):
        model = {"backend": "llamacpp", "gguf_path": run.base_gguf, "lora_path": lora_path}
        run_settings = _with_model(settings, model)
        err.print(f"evaluating the {label} model ...", highlight=False)

        def show(result: CaseResult, done: int, planned: int, label: str = label) -> None:
            verdict = "pass" if result.passed else "FAIL"
            err.print(
                f"[{done}/{planned}] {label} {result.corpus}/{result.id}: {verdict}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

        try:
            record = run_evals(corpora, run_settings, on_case=show)
        except EvalError as exc:
            raise _fail(str(exc), 1 if isinstance(exc, EvalModelError) else 2) from None
        record.model = f"{Path(run.base_gguf).name}" + (
            f" + {run.run_id}" if lora_path else " (base)"
        )
        try:
            paths[label] = str(save_run(record, eval_runs))
        except EvalError as exc:
            raise _fail(str(exc), 1) from None
        for name, rate in record.per_corpus.items():
            run.eval[f"{label}:{name}"] = EvalScore(
                corpus=name,
                passed=rate.passed,
                total=rate.total,
                rate=rate.rate or 0.0,
                eval_run=paths[label],
            )
    tracker = Tracker(run, run_dir)
    for key, score in run.eval.items():
        label, _, name = key.partition(":")
        tracker.scalar(f"eval/{name}/{label}", score.rate, run.steps_done)
    tracker.close()
    table = Table(show_edge=False)
    for column in ("corpus", "base", "tuned"):
        table.add_column(column)
    for name in sorted({s.corpus for s in run.eval.values()}):
        cells = [escape(name)]
        for label in ("base", "tuned"):
            got = run.eval.get(f"{label}:{name}")
            cells.append(f"{got.passed}/{got.total} ({got.rate:.0%})" if got else "-")
        table.add_row(*cells)
    out.print(table)
    out.print(
        f"side by side: assistant eval compare {paths['base']} {paths['tuned']}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _with_model(settings: Settings, model: Mapping[str, object]) -> Settings:
    from graph.settings import SettingsError, load_settings

    merged = settings.model_dump()
    merged["model"] = {**merged["model"], **model}
    try:
        return load_settings(**merged)
    except SettingsError as exc:
        raise _fail(str(exc).replace("\n", " ")) from None


@finetune_app.command("runs")
def runs_command() -> None:
    """List the fine-tuning runs: status, steps, losses, step time, eval scores."""
    from tools.finetune.track import list_runs

    settings = cli_settings()
    runs = list_runs(_runs_dir(settings))
    if not runs:
        out.print(f"No fine-tuning runs in {_runs_dir(settings)}.", markup=False, highlight=False)
        return
    table = Table(show_edge=False)
    for column in ("run", "status", "base", "steps", "train loss", "val loss", "s/step", "eval"):
        table.add_column(column, no_wrap=column in ("run", "steps"))
    for run in runs:
        train = run.train_loss
        val = run.validation_loss
        scores = ", ".join(
            f"{key} {score.passed}/{score.total}" for key, score in sorted(run.eval.items())
        )
        table.add_row(
            escape(run.run_id),
            escape(run.status),
            escape(Path(run.base_gguf).name),
            f"{run.steps_done}/{run.total_steps}",
            f"{train[0].loss:.2f} -> {train[-1].loss:.2f}" if train else "-",
            f"{val[0].loss:.2f} -> {val[-1].loss:.2f}" if val else "-",
            f"{run.seconds_per_step:.2f}" if run.seconds_per_step is not None else "-",
            escape(scores) or "-",
        )
    out.print(table)
