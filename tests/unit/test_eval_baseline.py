"""Diffs of eval runs over different cases: the default baseline is a run of the same
cases, and a comparison of different corpora or tags says its overall rates differ in kind.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from apps.cli.evals import eval_app
from evals.records import RunRecord, previous_run, save_run
from evals.report import compare, print_comparison
from tests.support.eval_runs import passing_case, run_record


def record(
    run_id: str, corpora: tuple[str, ...] = ("routing",), *, tags: tuple[str, ...] = ()
) -> RunRecord:
    """A run of one passing case per corpus, started at the minute its id names."""
    minute = int(run_id[9:13])
    cases = [passing_case(name) for name in corpora]
    return run_record(
        run_id, cases, minutes=minute, start=datetime(2026, 1, 1, tzinfo=UTC), tags=tags
    )


def test_the_default_baseline_passes_over_runs_of_other_corpora(tmp_path: Path) -> None:
    old_routing = save_run(record("20260101T0001Z-a"), tmp_path)
    save_run(record("20260101T0002Z-b", ("safety",)), tmp_path)
    save_run(record("20260101T0003Z-c", ("routing", "safety")), tmp_path)
    save_run(record("20260101T0004Z-d", tags=("fuzzy",)), tmp_path)
    new_routing = save_run(record("20260101T0005Z-e"), tmp_path)
    assert previous_run(new_routing, tmp_path) == old_routing


@pytest.mark.parametrize(
    ("corpora", "tags"),
    [
        (("safety",), ()),  # another corpus
        (("routing", "safety"), ()),  # more corpora
        (("routing",), ("fuzzy",)),  # the same corpus, a --tag filter
    ],
)
def test_no_baseline_when_no_earlier_run_ran_the_same_cases(
    tmp_path: Path, corpora: tuple[str, ...], tags: tuple[str, ...]
) -> None:
    save_run(record("20260101T0001Z-a", corpora, tags=tags), tmp_path)
    new = save_run(record("20260101T0002Z-b"), tmp_path)
    assert previous_run(new, tmp_path) is None


def test_corpora_in_another_order_are_the_same_cases(tmp_path: Path) -> None:
    old = save_run(record("20260101T0001Z-a", ("safety", "routing")), tmp_path)
    new = save_run(record("20260101T0002Z-b", ("routing", "safety")), tmp_path)
    assert previous_run(new, tmp_path) == old


def test_comparing_runs_of_different_corpora_gives_no_overall_delta() -> None:
    a = record("20260101T0001Z-a")
    b = record("20260101T0002Z-b", ("safety",))
    comparison = compare(a, b)
    assert not comparison.same_cases
    console = Console(record=True, width=200, color_system=None)
    print_comparison(comparison, console)
    overall = next(line for line in console.export_text().splitlines() if "overall" in line)
    assert "other cases" in overall and " pt" not in overall
    assert compare(a, record("20260101T0003Z-c")).same_cases


def test_cli_compare_and_report_say_the_runs_ran_different_cases(tmp_path: Path) -> None:
    cli = CliRunner()
    save_run(record("20260101T0001Z-a", ("routing", "safety")), tmp_path)
    save_run(record("20260101T0002Z-b", ("safety",)), tmp_path)
    done = cli.invoke(eval_app, ["compare", "0001Z", "0002Z", "--runs-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "ran different cases" in text and "compare the corpora both ran: safety" in text
    as_json = cli.invoke(
        eval_app, ["compare", "0001Z", "0002Z", "--runs-dir", str(tmp_path), "--json"]
    )
    assert json.loads(as_json.stdout)["same_cases"] is False
    # The latest run's own report: nothing earlier of the same cases, so no diff.
    report = cli.invoke(eval_app, ["report", "--runs-dir", str(tmp_path)])
    assert report.exit_code == 0, report.output
    assert "no diff: no earlier run of the same corpora" in " ".join(report.output.split())
    # Asked for explicitly, the baseline is used, with the note.
    chosen = cli.invoke(eval_app, ["report", "--runs-dir", str(tmp_path), "--baseline", "0001Z"])
    assert chosen.exit_code == 0, chosen.output
    assert "ran different cases" in " ".join(chosen.output.split())
