"""Run records: what an evaluation run produced, as JSON files in the runs directory.

The record's JSON Schema is ``evals/run.schema.json`` (:func:`run_schema`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
)

from evals.corpus import EVALS_DIR, EvalError, shorten
from graph.settings import Settings
from tools.text import validation_error_line

SCHEMA_FILE = EVALS_DIR / "run.schema.json"
RECORD_VERSION = 1


class ExpectationResult(BaseModel):
    """How one expectation went."""

    kind: str
    expected: Any
    passed: bool
    weight: float
    detail: str = Field(description="What was seen, in words (why it failed, when it did).")


class SourceRef(BaseModel):
    """A retrieved passage, without its text."""

    name: str | None = None
    source: str | None = None
    section: str | None = None
    page: int | None = None
    score: float | None = None


class CaseResult(BaseModel):
    """One case as it ran."""

    corpus: str
    id: str
    tags: list[str]
    turns: list[str]
    reply: str | None = Field(description="The reply to the last turn (None if the case crashed).")
    concept: str | None = None
    blocked: bool | None = None
    refusal: bool | None = None
    sources: list[SourceRef] = Field(default_factory=list)
    prompt_tokens: int | None = None
    latency_ms: float | None = Field(None, description="Wall time of the last turn.")
    summary: str | None = Field(
        None, description="The running summary of the last thread after the last turn."
    )
    threads: int = Field(1, description="Threads the case ran (sessions), each fresh.")
    expectations: list[ExpectationResult]
    passed: bool
    score: float = Field(ge=0.0, le=1.0, description="Weighted share of passed expectations.")
    known_failure: str | None = None
    error: str | None = Field(None, description="Why the case crashed; a crash is a failure.")


class PassRate(BaseModel):
    """Pass rate of a group of cases; known failures are listed but not counted."""

    passed: int
    total: int = Field(description="Cases counted (known failures excluded).")
    rate: float | None = Field(description="passed / total; None when total is 0.")
    score: float | None = Field(description="Mean weighted score of the counted cases.")
    known_failures: int = 0


class RunRecord(BaseModel):
    """A whole evaluation run, as written to ``<runs_dir>/<run_id>.json``."""

    version: int = RECORD_VERSION
    run_id: str
    started: datetime
    finished: datetime
    model: str = Field(description="fake, default (the default GGUF), or a GGUF path.")
    backend: str
    git_commit: str | None
    corpora: list[str]
    corpus_files: dict[str, str]
    tags: list[str] = Field(description="The --tag filter (empty: every case).")
    settings: dict[str, Any]
    overall: PassRate
    per_corpus: dict[str, PassRate]
    per_tag: dict[str, PassRate]
    cases: list[CaseResult]
    interrupted: bool = Field(
        False,
        description="Stopped (Ctrl-C) before every case ran: cases and pass rates hold "
        "only the cases that finished.",
    )
    planned: int | None = Field(
        None, description="Cases the run was to run (set when it was interrupted)."
    )

    def case(self, corpus: str, case_id: str) -> CaseResult | None:
        """The result of one case, or None."""
        return next((c for c in self.cases if c.corpus == corpus and c.id == case_id), None)


def run_schema() -> dict[str, Any]:
    """The JSON Schema of a run record (what ``evals/run.schema.json`` holds)."""
    schema = RunRecord.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def pass_rate(cases: Iterable[CaseResult]) -> PassRate:
    """The pass rate and mean score of cases, known failures left out of the counts."""
    cases = list(cases)
    counted = [c for c in cases if not c.known_failure]
    passed = sum(c.passed for c in counted)
    return PassRate(
        passed=passed,
        total=len(counted),
        rate=passed / len(counted) if counted else None,
        score=sum(c.score for c in counted) / len(counted) if counted else None,
        known_failures=len(cases) - len(counted),
    )


# --- run files -------------------------------------------------------------------------


def default_runs_dir(settings: Settings) -> Path:
    """Where run records go unless told otherwise: ``<data_dir>/evals/runs``."""
    return settings.data_dir / "evals" / "runs"


def _not_a_folder(runs_dir: Path) -> Path | None:
    """The file that stands where ``runs_dir`` or one of its parents should be a folder.

    None when the path is a folder, or does not exist and could be created as one (its
    nearest existing ancestor is a folder).
    """
    for candidate in (runs_dir, *runs_dir.parents):
        try:
            if candidate.is_dir():
                return None
            if candidate.exists():
                return candidate
        except OSError:
            return None
    return None


def _check_is_folder(runs_dir: Path, doing: str) -> None:
    """Raise a clear error when ``runs_dir`` (or a parent of it) is a file.

    Args:
        runs_dir: The runs folder.
        doing: What failed, to start the message (``cannot write run records to``).

    Raises:
        EvalError: A file stands where the folder should be.
    """
    blocker = _not_a_folder(runs_dir)
    if blocker is None:
        return
    which = "it" if blocker == runs_dir else str(blocker)
    raise EvalError(
        f"{doing} {runs_dir}: {which} is a file, not a folder "
        "(--runs-dir takes the folder that holds the run records)"
    )


def check_runs_dir(runs_dir: Path) -> None:
    """Make sure run records can be written to ``runs_dir`` (created if missing).

    Called before a run starts, so that a run of an hour is not lost at the end to a
    directory that cannot be written: a probe file is created and removed.

    Raises:
        EvalError: The directory is a file, or cannot be created or written.
    """
    _check_is_folder(runs_dir, "cannot write run records to")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=runs_dir, prefix=".probe-", suffix=".tmp"):
            pass
    except OSError as exc:
        raise EvalError(
            f"cannot write run records to {runs_dir}: {exc.strerror or exc} "
            "(choose another with --runs-dir)"
        ) from None


def save_run(record: RunRecord, runs_dir: Path) -> Path:
    """Write the record as ``<runs_dir>/<run_id>.json`` and return the path.

    The file appears whole or not at all: the record is written to a temporary file in
    the same directory, which then replaces the target (``os.replace``), so a crash or a
    full disk never leaves half a record for reports to trip over.

    Raises:
        EvalError: The directory or file cannot be written.
    """
    path = runs_dir / f"{record.run_id}.json"
    temporary: str | None = None
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        # The temporary name does not end in .json: list_runs never sees it.
        handle, temporary = tempfile.mkstemp(
            dir=runs_dir, prefix=f".{record.run_id}.", suffix=".tmp"
        )
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(record.model_dump_json(indent=2) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        raise EvalError(f"cannot write the run record {path}: {exc}") from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
    return path


def load_run(path: str | Path) -> RunRecord:
    """Read a run record.

    Raises:
        EvalError: The file is missing, not JSON, or not a run record.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalError(f"no such run file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read the run file {path}: {exc}") from None
    try:
        return RunRecord.model_validate_json(text)
    except ValidationError as exc:
        raise EvalError(
            f"{path} is not a run record: {shorten(validation_error_line(exc), 300)}"
        ) from None


def list_runs(runs_dir: Path) -> list[Path]:
    """Run files in the directory, oldest first (run ids sort by time)."""
    if not runs_dir.is_dir():
        return []
    return sorted(runs_dir.glob("*.json"))


Skipped = Callable[[Path, EvalError], None]
"""Told about a run file that a search skipped because it cannot be read as a record."""


def _newest_readable(candidates: list[Path], on_skip: Skipped | None) -> Path | None:
    """The newest of ``candidates`` (oldest first) that loads as a run record."""
    for path in reversed(candidates):
        try:
            load_run(path)
        except EvalError as exc:
            if on_skip is not None:
                on_skip(path, exc)
            continue
        return path
    return None


def find_run(given: str | None, runs_dir: Path, on_skip: Skipped | None = None) -> Path:
    """A run file from a path, a run id (or a unique part of one), or None for the latest.

    The latest run (``given`` None or ``latest``) is the newest file that reads as a run
    record: corrupt or foreign files are skipped and passed to ``on_skip``. A run named
    explicitly is returned as it is; loading it reports what is wrong with it.

    Raises:
        EvalError: No such run, the part matches several, or ``runs_dir`` is a file.
    """
    if given is not None and given != "latest":
        path = Path(given).expanduser()
        if path.is_file():
            return path
    _check_is_folder(runs_dir, "cannot read runs from")
    runs = list_runs(runs_dir)
    if given is None or given == "latest":
        latest = _newest_readable(runs, on_skip)
        if latest is None:
            found = f" ({len(runs)} unreadable files)" if runs else ""
            raise EvalError(f"no runs in {runs_dir}{found}: run `assistant eval` first")
        return latest
    matches = [r for r in runs if r.stem == given] or [r for r in runs if given in r.stem]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(m.stem for m in matches[:5])
        raise EvalError(f"{given!r} matches several runs: {listed}")
    raise EvalError(f"no such run file or run id: {given} (runs are in {runs_dir})")


def covers(run: RunRecord) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a run's pass rates are over: its corpora and its ``--tag`` filter (sorted)."""
    return tuple(sorted(run.corpora)), tuple(sorted(run.tags))


def previous_run(run: Path, runs_dir: Path, on_skip: Skipped | None = None) -> Path | None:
    """The newest readable run before ``run`` over the same cases, or None.

    The same cases: the same corpora and ``--tag`` filter (:func:`covers`), so the diff
    is of cases both ran. A run of other corpora in between (``eval routing``, then
    ``eval safety``) is passed over: against it, every case would differ by being in one
    run only, and the overall rates would be of different cases.

    Files that do not read as run records (corrupt, half-written by an older version,
    foreign) are skipped and passed to ``on_skip``: one bad old file must not block
    reporting a good run.

    Raises:
        EvalError: ``run`` itself cannot be read as a run record.
    """
    wanted = covers(load_run(run))
    runs = [r for r in list_runs(runs_dir) if r.resolve() != run.resolve()]
    for path in reversed([r for r in runs if r.stem < run.stem]):
        try:
            candidate = load_run(path)
        except EvalError as exc:
            if on_skip is not None:
                on_skip(path, exc)
            continue
        if covers(candidate) == wanted:
            return path
    return None


Status = Literal["passed", "failed", "known_failure"]


def status(case: CaseResult) -> Status:
    """A case's status for diffs: known failures are their own kind."""
    if case.known_failure and not case.passed:
        return "known_failure"
    return "passed" if case.passed else "failed"
