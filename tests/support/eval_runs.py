"""Evaluation run records built by hand, for the tests of the runs directory and reports.

:func:`run_record` derives what a real run derives from its cases (the corpora, in the
order their cases ran, and the pass rates overall, per corpus and per tag), so a test
names only the cases and what it is about.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from evals.records import CaseResult, RunRecord, pass_rate

START = datetime(2025, 1, 1, tzinfo=UTC)


def passing_case(corpus: str = "small", case_id: str = "c0") -> CaseResult:
    """A one-turn case that passed, with no expectations."""
    return CaseResult(
        corpus=corpus,
        id=case_id,
        tags=[],
        turns=["hi"],
        reply="hello",
        expectations=[],
        passed=True,
        score=1.0,
    )


def run_record(
    run_id: str,
    cases: Iterable[CaseResult],
    *,
    minutes: int = 0,
    start: datetime = START,
    seconds: int = 5,
    tags: Iterable[str] = (),
    **fields: Any,
) -> RunRecord:
    """A run of ``cases`` that started ``minutes`` after ``start`` and took ``seconds``.

    Args:
        run_id: The run's id (its file name in the runs directory, without ``.json``).
        cases: The case results, in the order they ran.
        minutes: When the run started, in minutes after ``start``.
        start: The time ``minutes`` count from.
        seconds: How long the run took.
        tags: The run's ``--tag`` filter (empty: every case).
        **fields: Other fields of the record as they should be (``git_commit``,
            ``settings``, ``interrupted``...).
    """
    cases = list(cases)
    corpora = list(dict.fromkeys(c.corpus for c in cases))
    case_tags = sorted({t for c in cases for t in c.tags})
    started = start + timedelta(minutes=minutes)
    values: dict[str, Any] = {
        "run_id": run_id,
        "started": started,
        "finished": started + timedelta(seconds=seconds),
        "model": "fake",
        "backend": "fake",
        "git_commit": None,
        "corpora": corpora,
        "corpus_files": {name: f"evals/corpora/{name}.yaml" for name in corpora},
        "tags": list(tags),
        "settings": {},
        "overall": pass_rate(cases),
        "per_corpus": {n: pass_rate(c for c in cases if c.corpus == n) for n in corpora},
        "per_tag": {t: pass_rate(c for c in cases if t in c.tags) for t in case_tags},
        "cases": cases,
    }
    return RunRecord(**{**values, **fields})
