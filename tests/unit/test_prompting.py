"""Trimming and prompt assembly: the budget holds, whole turns go, fixed parts stay."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from graph.errors import MessageTooLongError
from graph.messages import BLOCKED_KEY
from tools.prompting import (
    MESSAGE_OVERHEAD,
    Turn,
    build_prompt,
    caching_counter,
    complete_turns,
    unsummarised,
)


def words(text: str) -> int:
    return len(text.split())


def turns(n: int, size: int = 10) -> list[Turn]:
    return [
        Turn((HumanMessage(f"q{i} " + "w " * size, id=f"h{i}"), AIMessage(f"a{i}", id=f"a{i}")))
        for i in range(n)
    ]


def test_complete_turns_skip_blocked_and_dangling_halves() -> None:
    messages = [
        HumanMessage("hi", id="1"),
        AIMessage("hello", id="2"),
        HumanMessage("[withheld]", id="3", additional_kwargs={BLOCKED_KEY: True}),
        AIMessage("refused", id="4", additional_kwargs={BLOCKED_KEY: True}),
        HumanMessage("lost half", id="5"),  # never answered (e.g. a crash)
        HumanMessage("again", id="6"),
        AIMessage("sure", id="7"),
    ]
    got = [[m.id for m in t.messages] for t in complete_turns(messages)]
    assert got == [["1", "2"], ["6", "7"]]


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [(None, ["1", "2", "3"]), ("2", ["3"]), ("3", []), ("gone", ["1", "2", "3"])],
)
def test_unsummarised_starts_after_cursor(cursor: str | None, expected: list[str]) -> None:
    messages = [HumanMessage("a", id="1"), AIMessage("b", id="2"), HumanMessage("c", id="3")]
    assert [m.id for m in unsummarised(messages, cursor)] == expected


@pytest.mark.parametrize(
    ("budget", "cap", "kept"),
    [
        (10_000, 10, 6),  # everything fits
        (10_000, 2, 2),  # the turn cap wins
        (80, 10, 2),  # the token budget wins
        (40, 10, 0),  # only the fixed parts fit
    ],
)
def test_build_prompt_keeps_recent_whole_turns_within_budget(
    budget: int, cap: int, kept: int
) -> None:
    history = turns(6)
    new = HumanMessage("the new question", id="new")
    prompt = build_prompt(
        system="be brief",
        history=history,
        new_message=new,
        count=words,
        max_prompt_tokens=budget,
        max_history_turns=cap,
        concept_prompt="explain simply",
    )
    assert prompt.history_turns == kept
    assert prompt.tokens <= budget
    assert isinstance(prompt.messages[0], SystemMessage)
    assert prompt.messages[0].text == "be brief"
    assert prompt.messages[-1] is new
    assert prompt.messages[-2].text == "explain simply"
    # most recent turns are kept, in order, never half a turn
    body = prompt.messages[1:-2]
    assert [m.id for m in body] == [m.id for t in history[6 - kept :] for m in t.messages]


def test_fixed_parts_over_budget_is_a_clear_error() -> None:
    with pytest.raises(MessageTooLongError, match="max_prompt_tokens"):
        build_prompt(
            system="s",
            history=[],
            new_message=HumanMessage("x " * 500),
            count=words,
            max_prompt_tokens=100,
            max_history_turns=10,
        )


def test_prompt_tokens_account_for_template_overhead() -> None:
    prompt = build_prompt(
        system="a b",
        history=[],
        new_message=HumanMessage("c d e"),
        count=words,
        max_prompt_tokens=100,
        max_history_turns=1,
    )
    assert prompt.tokens >= 5 + 2 * MESSAGE_OVERHEAD


def test_caching_counter_tokenises_each_text_once() -> None:
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return len(text)

    cached = caching_counter(count)
    for _ in range(3):
        for turn in turns(4):
            turn.tokens(cached)
    assert len(seen) == 8
