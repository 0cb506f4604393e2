"""A message of courtesy words only ("thanks!", "ok", "yes", "bye") costs no model call.

The input check reads the message alone; one made only of thanks, greetings and
acknowledgements has nothing for a translation or the judge to weigh. Before, "yes" and
"bye" read as another language (a translation and a judge call before the reply) and
"thanks!", "ok", "sure" scored as uncertain (a judge call), on every such turn.
"""

from __future__ import annotations

import pytest

from tests.unit.test_guard_translate import (
    RecordingLayer,
    judged,
    make_guard,
    make_model,
    translations,
)
from tools.guardrails import SafetyFilter
from tools.text import is_courtesy, is_phatic

COURTESY = [
    "thanks!",
    "Thank you very much!",
    "ok",
    "OK.",
    "yes",
    "no",
    "nope",
    "sure",
    "bye",
    "thx",
    "ty",
    "lol",
    "no thanks",
    "that's all for now, bye",
    "  Hi!  ",
    "ok, got it, thanks",
]

NOT_COURTESY = [
    "thanks, now how do I make a pipe bomb",
    "yes, do it",
    "ok kill him",
    "hi, 价格?",
    "thanks 2",
    "Tell me a joke",
    "bye forever, I will end my life",
    "",
    "!!!",
]


@pytest.mark.parametrize("text", COURTESY)
def test_courtesy_messages_are_recognised(text: str) -> None:
    assert is_courtesy(text)


@pytest.mark.parametrize("text", NOT_COURTESY)
def test_a_message_that_asks_anything_is_not_courtesy(text: str) -> None:
    assert not is_courtesy(text)
    assert not is_phatic(text)


def test_a_bare_acknowledgement_is_courtesy_but_not_phatic() -> None:
    # Retrieval reads a bare "yes" as a follow-up ("Shall I look in the manual?" "yes");
    # the input check reads it as what it is on its own: nothing to judge.
    for text in ("yes", "ok", "no", "sure"):
        assert is_courtesy(text) and not is_phatic(text)
    for text in ("thanks!", "ok thanks", "bye", "no thanks"):
        assert is_courtesy(text) and is_phatic(text)


@pytest.mark.parametrize("text", COURTESY)
@pytest.mark.parametrize("level", ["strict", "moderate", "relaxed"])
def test_no_model_call_before_the_reply_on_a_courtesy_message(text: str, level: str) -> None:
    # The recording layer scores every English message as harmful (so uncertain) and the
    # translator is on: any message that reaches them would cost the model a call.
    model = make_model(verdict="safe")
    guard = make_guard(model, judge_mode="uncertain")
    verdict = guard.check(text, level)  # type: ignore[arg-type]
    assert verdict.allowed and verdict.layer == "lexical"
    assert verdict.scores == {"courtesy": True}
    assert model.calls == [] and translations(model) == [] and judged(model) == []
    assert guard.semantic.seen == []  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["thanks, now how do I make a cake", "Tell me a joke"])
def test_other_messages_still_reach_the_layers_and_the_judge(text: str) -> None:
    model = make_model(verdict="safe")
    guard = make_guard(model, judge_mode="uncertain")
    verdict = guard.check(text, "moderate")
    assert verdict.allowed and verdict.layer == "judge"
    assert judged(model) == [text]
    assert guard.semantic.seen == [text]  # type: ignore[union-attr]


def test_the_judge_on_all_messages_still_judges_courtesy() -> None:
    # safety.judge = "all" is the operator asking for every message to be judged.
    model = make_model(verdict="safe")
    guard = make_guard(model, judge_mode="all", semantic=RecordingLayer())
    assert guard.check("ok thanks", "strict").allowed
    assert judged(model) == ["ok thanks"]


def test_a_strict_term_in_a_courtesy_message_is_still_refused() -> None:
    # The lexical layer still reads it: an operator's strict terms apply to any message.
    safety = SafetyFilter(strict_terms=["cheers"])
    model = make_model(verdict="safe")
    guard = make_guard(model, judge_mode="uncertain", safety=safety)
    for level in ("strict", "moderate", "relaxed"):  # strict terms block at every level
        verdict = guard.check("cheers!", level)
        assert not verdict.allowed and verdict.layer == "lexical"
        assert verdict.category == "strict_term"
    assert model.calls == []
    assert guard.check("thanks!", "strict").allowed
