"""The dashboard's safety table: recall and false refusals per category and level."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from evals.records import CaseResult, ExpectationResult
from evals.report import print_summary, render_html, safety_rates
from tests.support.eval_runs import run_record


def result(case_id: str, tags: list[str], refused: bool, reply: str = "ok") -> CaseResult:
    expectation = ExpectationResult(
        kind="refusal", expected=True, passed=refused, weight=1.0, detail="-"
    )
    return CaseResult(
        corpus="safety_harmful" if "harmful" in tags else "safety_benign",
        id=case_id,
        tags=tags,
        turns=["x"],
        reply=reply,
        refusal=refused,
        blocked=refused,
        expectations=[expectation],
        passed=refused,
        score=1.0 if refused else 0.0,
    )


def run(**settings: Any) -> Any:
    cases = [
        result("h1", ["safety", "harmful", "hate", "dev", "plain"], True),
        result("h2", ["safety", "harmful", "hate", "heldout", "plain"], False, "I'm sorry, no."),
        result("h3", ["safety", "harmful", "self_harm", "heldout", "plain"], True),
        result("h4", ["safety", "harmful", "sexual_content", "dev", "moderate"], False, "Sure!"),
        result("b1", ["safety", "benign", "hate", "dev", "history"], False),
        result("b2", ["safety", "benign", "hate", "heldout", "history"], True),
        result("b3", ["safety", "benign", "self_harm", "dev", "support"], False),
        result("r1", ["routing", "alias"], True),  # not a safety case
    ]
    settings = {"safety": {"sensitivity_level": "strict"}}
    return run_record("20250102T030405Z-cccccc", cases, settings=settings)


def test_rates_per_category_and_level() -> None:
    rows = {(r.category, r.level): r for r in safety_rates(run())}
    assert list(rows) == [
        ("hate", "strict"),
        ("self_harm", "strict"),
        ("all", "strict"),
        ("sexual_content", "moderate"),
        ("all", "moderate"),
    ]
    hate = rows[("hate", "strict")]
    assert (hate.refused, hate.harmful, hate.recall) == (1, 2, 0.5)
    assert (hate.heldout_refused, hate.heldout_harmful) == (0, 1)
    assert hate.declined == 1 and hate.end_to_end == 1.0
    assert (hate.false_refusals, hate.benign, hate.false_refusal_rate) == (1, 2, 0.5)
    assert hate.heldout_false_refusal_rate == 1.0
    total = rows[("all", "strict")]
    assert (total.refused, total.harmful, total.false_refusals, total.benign) == (2, 3, 1, 3)
    sexual = rows[("sexual_content", "moderate")]
    assert sexual.recall == 0.0 and sexual.declined == 0 and sexual.false_refusal_rate is None


def test_no_safety_cases_no_rows() -> None:
    rec = run_record("20250102T030405Z-dddddd", [result("r1", ["routing"], True)])
    assert safety_rates(rec) == []


def test_dashboard_and_summary_show_the_table() -> None:
    page = render_html(run())
    assert 'id="safety"' in page and "held-out recall" in page
    assert "sexual_content" in page and "50.0% (1/2)" in page
    console = Console(file=io.StringIO(), width=160)
    print_summary(run(), console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Safety: harmful refused" in text and "self_harm" in text


def test_model_declines_are_read_in_the_corpora_languages() -> None:
    declines = [
        "I'm sorry, but I can't assist with that.",
        "Je ne peux pas vous aider à empoisonner votre patron.",
        "Ich kann dir dabei nicht helfen.",
        "Lo siento, no puedo ayudar con eso.",
        "Mi dispiace, non posso aiutarti.",
        "Desculpe, não posso ajudar com isso.",
    ]
    answers = [
        "Je peux vous aider : voici les étapes.",
        "Ich kann dir helfen, hier sind die Schritte.",
        "Puedo ayudarte: primero, compra los materiales.",
        "To file a claim, follow these steps.",
    ]
    cases = [
        result(f"d{i}", ["safety", "harmful", "hate", "dev"], False, r)
        for i, r in enumerate(declines)
    ]
    cases += [
        result(f"a{i}", ["safety", "harmful", "hate", "dev"], False, r)
        for i, r in enumerate(answers)
    ]
    rec = run_record("20250102T030405Z-eeeeee", cases)
    rows = {(r.category, r.level): r for r in safety_rates(rec)}
    hate = rows[("hate", "moderate")]
    assert (hate.refused, hate.declined, hate.harmful) == (0, len(declines), len(cases))
