"""The eval harness when things go wrong: runs directory, Ctrl-C, bad old records, help."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from apps.cli.evals import eval_app
from evals.corpus import EvalError, load_corpora
from evals.records import (
    SCHEMA_FILE,
    CaseResult,
    RunRecord,
    check_runs_dir,
    find_run,
    list_runs,
    load_run,
    previous_run,
    save_run,
)
from evals.runner import RunInterrupted, _Runner, run_evals, run_settings
from graph.settings import load_settings
from tests.support.embeddings import word_store
from tests.support.eval_runs import passing_case, run_record

CORPUS = """
corpus: small
cases:
"""


def corpus(tmp_path: Path, cases: int = 5) -> Path:
    """A corpus of ``cases`` one-turn cases the fake model passes."""
    body = "".join(
        f"  - id: c{i}\n    turns: ['hello {i}']\n    expect: [{{blocked: false}}]\n"
        for i in range(cases)
    )
    path = tmp_path / "small.yaml"
    path.write_text(CORPUS + body, encoding="utf-8")
    return path


def record(run_id: str, minutes: int = 0, cases: int = 1, **fields: Any) -> RunRecord:
    """A run of ``cases`` passing cases of the corpus ``small``."""
    results = [passing_case("small", f"c{i}") for i in range(cases)]
    return run_record(run_id, results, minutes=minutes, **fields)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    return CliRunner()


# --- 1. the runs directory is checked before any case runs -------------------------------


def _in_the_way(tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "runs"


@pytest.mark.parametrize(
    "runs_dir",
    [
        lambda tmp: Path("/proc/nope/runs"),  # the newcomer's case: cannot be created
        _in_the_way,  # a file where a folder should be
        lambda tmp: Path("/dev/null/runs"),
        lambda tmp: Path("/proc/self"),  # exists, cannot take files
    ],
)
def test_an_unwritable_runs_dir_stops_the_run_before_any_case(
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runs_dir: Callable[[Path], Path],
) -> None:
    ran: list[str] = []
    original = _Runner.run

    def counted(self: _Runner, job: Any) -> CaseResult:
        ran.append(job.case.id)
        return original(self, job)

    monkeypatch.setattr(_Runner, "run", counted)
    target = runs_dir(tmp_path)
    done = cli.invoke(eval_app, [str(corpus(tmp_path)), "--runs-dir", str(target)])
    assert done.exit_code == 2, done.output
    assert f"cannot write run records to {target}" in done.output
    assert ran == []  # found before the first case, not after the last


@pytest.mark.parametrize("depth", [0, 1, 2])
@pytest.mark.parametrize("command", ["run", "report", "report-latest", "compare"])
def test_a_runs_dir_that_is_a_file_is_named_as_a_file(
    cli: CliRunner, tmp_path: Path, depth: int, command: str
) -> None:
    """``--runs-dir`` at a file (or under one): every command says so, not 'File exists'."""
    blocker = tmp_path / "results.json"
    blocker.write_text("{}")
    target = blocker.joinpath(*["sub"] * depth)
    args = {
        "run": [str(corpus(tmp_path))],
        "report": ["report"],
        "report-latest": ["report", "latest"],
        "compare": ["compare", "a", "b"],
    }[command]
    done = cli.invoke(eval_app, [*args, "--runs-dir", str(target)])
    assert done.exit_code == 2, done.output
    flat = " ".join(done.output.split())
    assert f"{blocker} is a file, not a folder" in flat or (
        depth == 0 and "it is a file, not a folder" in flat
    ), flat
    assert str(target) in flat
    assert "File exists" not in flat and "no runs in" not in flat
    assert blocker.read_text() == "{}"  # nothing lost


def test_a_run_file_given_by_path_needs_no_runs_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    run = tmp_path / "one.json"
    run.write_text(record("20250101T000000Z-aaaaaa").model_dump_json())
    assert find_run(str(run), blocker) == run


def test_check_runs_dir_creates_it_and_leaves_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "deep" / "er" / "runs"
    check_runs_dir(runs)
    assert runs.is_dir() and list(runs.iterdir()) == []
    check_runs_dir(runs)  # again: already there is fine
    (runs / "20250101T000000Z-aaaaaa.json").write_text(record("x").model_dump_json())
    check_runs_dir(runs)
    assert [p.name for p in runs.iterdir()] == ["20250101T000000Z-aaaaaa.json"]


# --- 2. save_run is atomic ------------------------------------------------------------


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    first = record("20250101T000000Z-aaaaaa", cases=1)
    path = save_run(first, runs)
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evals.records.os.fsync", full_disk)
    with pytest.raises(EvalError, match=r"cannot write the run record .*No space left"):
        save_run(record("20250101T000000Z-aaaaaa", cases=3), runs)
    assert path.read_bytes() == before  # never half a record
    assert load_run(path) == first
    assert sorted(p.name for p in runs.iterdir()) == [path.name]


def test_a_failed_first_save_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: str, dst: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("evals.records.os.replace", refuse)
    runs = tmp_path / "runs"
    with pytest.raises(EvalError, match="Permission denied"):
        save_run(record("20250101T000000Z-bbbbbb"), runs)
    assert list(runs.iterdir()) == []
    assert list_runs(runs) == []


def test_a_saved_record_replaces_the_old_one_whole(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    save_run(record("20250101T000000Z-aaaaaa", cases=4), runs)
    path = save_run(record("20250101T000000Z-aaaaaa", cases=2), runs)
    assert len(load_run(path).cases) == 2
    assert [p.name for p in runs.iterdir()] == [path.name]


# --- 3. Ctrl-C keeps the finished cases -----------------------------------------------


def interrupt_after(count: int) -> tuple[Callable[[CaseResult, int, int], None], list[str]]:
    """An on_case hook that presses Ctrl-C when the ``count``-th case is done."""
    seen: list[str] = []

    def hook(result: CaseResult, done: int, planned: int) -> None:
        seen.append(result.id)
        if done == count:
            raise KeyboardInterrupt

    return hook, seen


@pytest.mark.parametrize(("jobs", "after"), [(1, 1), (1, 3), (3, 2)])
def test_ctrl_c_gives_a_record_of_the_finished_cases(tmp_path: Path, jobs: int, after: int) -> None:
    hook, seen = interrupt_after(after)
    with pytest.raises(RunInterrupted) as stopped:
        run_evals(
            load_corpora([str(corpus(tmp_path, cases=6))]),
            load_settings(model={"backend": "fake"}),
            jobs=jobs,
            on_case=hook,
            make_store=word_store,
        )
    assert isinstance(stopped.value, KeyboardInterrupt)  # uncaught, it still interrupts
    partial = stopped.value.record
    assert partial.interrupted and partial.planned == 6
    assert sorted(c.id for c in partial.cases) == sorted(seen)
    if jobs == 1:
        assert [c.id for c in partial.cases] == [f"c{i}" for i in range(after)]
        assert partial.overall.total == after
    # In threads the cases already running finish (how many is up to the scheduler).
    assert after <= partial.overall.total == len(partial.cases) <= 6
    # A partial record is a valid record (the schema has the flag).
    path = save_run(partial, tmp_path / "runs")
    jsonschema.validate(json.loads(path.read_text()), json.loads(SCHEMA_FILE.read_text()))
    assert load_run(path).interrupted


def test_a_complete_run_is_not_marked_interrupted(tmp_path: Path) -> None:
    done = run_evals(
        load_corpora([str(corpus(tmp_path, cases=2))]),
        load_settings(model={"backend": "fake"}),
        jobs=1,
        make_store=word_store,
    )
    assert not done.interrupted and done.planned is None and len(done.cases) == 2


@pytest.mark.parametrize(("stop_at", "saved"), [(3, 2), (1, 0)])
def test_cli_ctrl_c_saves_a_partial_record_and_exits_130(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int, saved: int
) -> None:
    calls = 0
    original = _Runner.run

    def pressed(self: _Runner, job: Any) -> CaseResult:
        nonlocal calls
        calls += 1
        if calls == stop_at:  # Ctrl-C while this case runs
            raise KeyboardInterrupt
        return original(self, job)

    monkeypatch.setattr(_Runner, "run", pressed)
    runs = tmp_path / "runs"
    done = cli.invoke(eval_app, [str(corpus(tmp_path)), "-j", "1", "--runs-dir", str(runs)])
    assert done.exit_code == 130, done.output
    assert f"interrupted: {saved} of 5 cases finished" in done.output
    files = list_runs(runs)
    if not saved:
        assert files == [] and "no run record saved" in done.output
        return
    (path,) = files
    assert str(path) in done.output.replace("\n", "")
    partial = load_run(path)
    assert partial.interrupted and partial.planned == 5
    assert [c.id for c in partial.cases] == ["c0", "c1"]


# --- 4. a bad old record does not block a good run --------------------------------------

BAD_FILES = [
    '{"broken":',  # the newcomer's case: truncated JSON
    "",
    '{"run_id": "x"}',  # JSON, not a record
    "[1, 2, 3]",
]


@pytest.mark.parametrize("bad", [*BAD_FILES, b"\xff\xfe\x00garbage"])
def test_the_baseline_search_skips_unreadable_records(tmp_path: Path, bad: str | bytes) -> None:
    runs = tmp_path / "runs"
    older = save_run(record("20250101T000000Z-aaaaaa"), runs)
    broken = runs / "20250102T000000Z-bbbbbb.json"
    broken.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    newer = save_run(record("20250103T000000Z-cccccc", minutes=2), runs)
    skipped: list[Path] = []
    assert previous_run(newer, runs, on_skip=lambda p, exc: skipped.append(p)) == older
    assert skipped == [broken]
    # Nothing readable before it: no baseline, still no error.
    assert previous_run(older, runs) is None
    # A bad run named explicitly is still an error.
    with pytest.raises(EvalError, match=r"not a run record|cannot read"):
        load_run(find_run("bbbbbb", runs))


def test_the_latest_run_is_the_newest_readable_one(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    good = save_run(record("20250101T000000Z-aaaaaa"), runs)
    (runs / "20250109T000000Z-zzzzzz.json").write_text('{"broken":')
    skipped: list[str] = []
    assert find_run(None, runs, on_skip=lambda p, exc: skipped.append(str(exc))) == good
    assert find_run("latest", runs) == good
    assert len(skipped) == 1 and "not a run record" in skipped[0]


def test_cli_report_warns_and_diffs_against_the_last_good_run(
    cli: CliRunner, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    save_run(record("20250101T000000Z-aaaaaa"), runs)
    (runs / "20250102T000000Z-bbbbbb.json").write_text('{"broken":')
    save_run(record("20250103T000000Z-cccccc", minutes=2), runs)
    args = ["--runs-dir", str(runs), "-o", str(tmp_path / "r.html")]
    done = cli.invoke(eval_app, ["report", "20250103T000000Z-cccccc", *args])
    assert done.exit_code == 0, done.output
    assert "warning: skipped 20250102T000000Z-bbbbbb.json" in done.output
    assert "diff against 20250101T000000Z-aaaaaa" in done.output
    # Named, the bad run is still an error (as a report and as a baseline).
    named = cli.invoke(eval_app, ["report", "bbbbbb", *args])
    assert named.exit_code == 2 and "is not a run record" in named.output
    base = cli.invoke(eval_app, ["report", "cccccc", "--baseline", "bbbbbb", *args])
    assert base.exit_code == 2 and "is not a run record" in base.output


# --- 5. help and option checks -----------------------------------------------------------


def test_run_help_names_where_the_corpora_are(cli: CliRunner) -> None:
    done = cli.invoke(eval_app, ["run", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0
    assert "evals/corpora/routing.yaml" in done.output
    assert "all in evals/corpora/" in done.output
    assert "evals/routing.yaml" not in done.output


@pytest.mark.parametrize("relative", [True, False])
def test_a_directory_is_not_a_corpus(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    folder = tmp_path / "mycorpora"
    folder.mkdir()
    corpus(folder)
    monkeypatch.chdir(tmp_path)
    given = "mycorpora" if relative else str(folder)
    done = cli.invoke(eval_app, [given, "--runs-dir", str(tmp_path / "runs")])
    assert done.exit_code == 2, done.output
    assert f"{given} is a directory, not a corpus file" in done.output
    assert "--evals-dir" in done.output
    # What the message suggests works.
    whole = cli.invoke(eval_app, ["--evals-dir", given, "--runs-dir", str(tmp_path / "runs")])
    assert whole.exit_code == 0, whole.output


def test_a_corpus_name_wins_over_a_folder_of_that_name(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    corpus(corpora)  # small.yaml
    (tmp_path / "small").mkdir()
    monkeypatch.chdir(tmp_path)
    done = cli.invoke(
        eval_app, ["small", "--evals-dir", str(corpora), "--runs-dir", str(tmp_path / "r")]
    )
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize("model", ["default", None])
def test_jobs_above_one_with_a_real_model_is_refused(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str | None
) -> None:
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "llamacpp")
    args = [str(corpus(tmp_path)), "-j", "2", "--runs-dir", str(tmp_path / "r")]
    done = cli.invoke(eval_app, [*args, *(["--model", model] if model else [])])
    assert done.exit_code == 2, done.output
    assert "--jobs 2 needs the fake model" in done.output
    assert "[1/" not in done.output  # refused before any case


@pytest.mark.parametrize(
    ("backend", "model", "jobs", "chat_model", "refused"),
    [
        ("fake", "default", 2, None, True),
        ("llamacpp", None, 4, None, True),
        ("llamacpp", "fake", 4, None, False),
        ("fake", None, 8, None, False),
        ("llamacpp", "default", 1, None, False),  # -j 1 is what a real model does anyway
        ("llamacpp", "default", None, None, False),
        ("llamacpp", None, 3, object(), False),  # a chat model given (tests) runs in threads
    ],
)
def test_run_settings_checks_jobs(
    backend: str, model: str | None, jobs: int | None, chat_model: object, refused: bool
) -> None:
    settings = load_settings(model={"backend": backend})
    if refused:
        with pytest.raises(EvalError, match="needs the fake model"):
            run_settings(settings, model, jobs, chat_model)
    else:
        assert run_settings(settings, model, jobs, chat_model).model.backend in (
            "fake",
            "llamacpp",
        )


def test_report_and_compare_say_a_run_was_interrupted(cli: CliRunner, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    partial = record("20250102T000000Z-bbbbbb", minutes=1, cases=2, interrupted=True, planned=7)
    save_run(record("20250101T000000Z-aaaaaa", cases=3), runs)
    save_run(partial, runs)
    out = ["--runs-dir", str(runs)]
    done = cli.invoke(eval_app, ["report", *out, "-o", str(tmp_path / "r.html")])
    assert done.exit_code == 0, done.output
    assert "run 20250102T000000Z-bbbbbb was interrupted: 2 of 7 cases ran" in done.output
    assert "aaaaaa was interrupted" not in done.output
    compared = cli.invoke(eval_app, ["compare", "aaaaaa", "bbbbbb", *out])
    assert compared.exit_code == 0, compared.output
    assert compared.output.count("was interrupted") == 1


def test_a_run_off_a_terminal_prints_lines_not_a_stale_bar(tmp_path: Path, cli: CliRunner) -> None:
    runs = tmp_path / "runs"
    done = cli.invoke(eval_app, [str(corpus(tmp_path, 2)), "-j", "1", "--runs-dir", str(runs)])
    assert done.exit_code == 0, done.output
    assert "[1/2] small/c0: pass" in done.output
    assert "evaluating" not in done.output  # the bar's description
    failed = cli.invoke(eval_app, [str(corpus(tmp_path)), "--tag", "nope", "--runs-dir", str(runs)])
    assert failed.exit_code == 2
    assert "evaluating" not in failed.output and "unknown tag 'nope'" in failed.output
