"""The running summary stays within its budget however long the thread, loses detail
oldest first and visibly, never makes a short message "too long", and a later summary
keeps the names and numbers the earlier one held."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.errors import MessageTooLongError
from graph.settings import Settings
from tests.conftest import thread
from tools.memory.facts import key_terms
from tools.memory.summaries import (
    details_left_out,
    extractive_summary,
    fit_summary,
    summary_problem,
    summary_request,
    summary_terms,
    terse,
)
from tools.models import FakeChatModel
from tools.prompting import Turn

SUMMARY_MARK = "running summary"
COUNT = FakeChatModel().get_num_tokens


def turns(*texts: str) -> list[Turn]:
    return [
        Turn((HumanMessage(t, id=f"h{i}"), AIMessage("Noted.", id=f"a{i}")))
        for i, t in enumerate(texts)
    ]


# Varied self-statements: people, pets, codes, places, dates; some with no name or number.
STATEMENTS = [
    "Hi, I'm Priya and my locker code is 4817.",
    "My dog Biscuit is 7 years old.",
    "I can't eat peanuts.",
    "I live in Tromsø, at Storgata 12.",
    "My sister Ingrid works at Equinor since 2019.",
    "My bike lock combination is 5530.",
    "I prefer green tea to coffee.",
    "My flight to Lisbon is on the 14th, seat 22C.",
    "I have three kids: Ola, Kari and Nils.",
    "My employee number is 880214.",
    "I work as a nurse at Haukeland.",
    "Our wifi password is 73 blue otters.",
]


def terms_of(texts: list[str]) -> set[str]:
    return {t for text in texts for t in key_terms(text)}


def present(terms: set[str], text: str) -> set[str]:
    return {t for t in terms if t in summary_terms(text)}


@pytest.mark.parametrize("budget", [12, 30, 60, 100, 160, 400])
def test_the_extractive_summary_fits_and_counts_what_it_left_out(budget: int) -> None:
    fitted = extractive_summary("", turns(*STATEMENTS), budget=budget, count=COUNT)
    assert fitted.tokens <= budget and COUNT(fitted.text) <= budget
    # nothing silently dropped: every name or number missing is counted in the marker
    lost = terms_of(STATEMENTS) - present(terms_of(STATEMENTS), fitted.text)
    assert len(lost) <= fitted.left_out
    if fitted.left_out and fitted.text:  # (a budget too small for the marker is logged)
        assert f"({fitted.left_out} older detail" in fitted.text
    else:
        assert "left out" not in fitted.text


def test_detail_is_lost_oldest_first() -> None:
    full = extractive_summary("", turns(*STATEMENTS), budget=1000, count=COUNT)
    assert (full.shortened, full.left_out) == (0, 0)
    assert full.text.count('The user said: "') == len(STATEMENTS)
    # a little short: the oldest sentences go terse, the newest stay in the user's words
    mid = extractive_summary("", turns(*STATEMENTS), budget=full.tokens - 20, count=COUNT)
    assert 'The user said: "Our wifi password is 73 blue otters."' in mid.text
    assert "The user said: \"Hi, I'm Priya" not in mid.text
    assert "About the user, in short: Priya and locker code 4817;" in mid.text
    # much shorter: names and numbers first; the newest survive, the oldest are left out
    tight = extractive_summary("", turns(*STATEMENTS), budget=40, count=COUNT)
    assert tight.left_out > 0 and tight.text.startswith("(")
    kept = summary_terms(tight.text)
    assert "73" in kept and "880214" in kept and "priya" not in kept


def test_a_summary_within_its_budget_is_left_alone() -> None:
    text = "The user is Priya. Her locker code is 4817."
    fitted = fit_summary(text, 100, COUNT)
    assert (fitted.text, fitted.shortened, fitted.left_out) == (text, 0, 0)


def test_refitting_keeps_the_count_and_never_grows() -> None:
    previous = ""
    total = 0
    for start in range(0, len(STATEMENTS), 3):
        fitted = extractive_summary(
            previous, turns(*STATEMENTS[start : start + 3]), budget=45, count=COUNT
        )
        assert fitted.tokens <= 45
        total += fitted.left_out
        previous = fitted.text
    marker = re.search(r"^\((\d+) older details left out\.\)$", previous, re.MULTILINE)
    assert marker and int(marker.group(1)) == total > 0
    # the newest statement's names and numbers are all still there
    assert {"73"} <= summary_terms(previous)


@pytest.mark.parametrize(
    ("sentence", "kept"),
    [
        ("I can't eat peanuts.", ["can't", "peanuts"]),
        ("I don't drink milk and I never eat pork.", ["don't", "never", "pork"]),
        ("Please remember this for later: my locker code is 4817.", ["locker code 4817"]),
        ("My sister Ingrid works at Equinor since 2019.", ["Ingrid", "Equinor", "2019"]),
    ],
)
def test_a_terse_sentence_keeps_negations_names_and_numbers(sentence: str, kept: list[str]) -> None:
    short = terse(sentence)
    assert len(short) < len(sentence)
    for word in kept:
        assert word in short
    assert not short.startswith(("I ", "My ", "Please"))


def test_a_repeated_statement_is_kept_once_and_counts_as_recent() -> None:
    first = extractive_summary("", turns(*STATEMENTS[:3]), budget=500, count=COUNT).text
    again = extractive_summary(first, turns(STATEMENTS[0]), budget=500, count=COUNT).text
    assert again.count("4817") == 1
    assert again.splitlines()[-1] == f'The user said: "{STATEMENTS[0]}"'


def test_summaries_of_other_shapes_are_read_back() -> None:
    # the extractive summary as earlier versions wrote it: one line
    legacy = 'The user said: "Hi, I\'m Priya." The user said: "My locker code is 4817."'
    assert summary_terms(legacy) == {"priya", "4817"}
    fitted = fit_summary(legacy, 8, COUNT)
    assert fitted.tokens <= 8 and fitted.text
    # a summary the model wrote: its names and numbers count, the marker's does not
    prose = "(3 older details left out.)\nThe user is Ada Lovelace, born in 1815."
    assert summary_terms(prose) == {"ada", "lovelace", "1815"}
    assert details_left_out(prose) == 3 and details_left_out(legacy) == 0


# --- a later summary keeps what the earlier one held ----------------------------------

EARLIER = "The user is Priya, a marine biologist. Her locker code is 4817."
LATER = turns("My cat Miso is 4 years old.", "Why is the sky blue?")


@pytest.mark.parametrize(
    ("candidate", "problem"),
    [
        ("The user has a cat, Miso, aged 4.", "leaves out 4817, priya"),
        ("The user is Priya and has a cat, Miso, aged 4.", "leaves out 4817"),
        ("The user is Priya (locker 4817), a biologist, and has a cat Miso.", "leaves out 4"),
        ("The user is Priya (locker 4817); her cat Miso is 4.", None),
    ],
)
def test_the_check_covers_the_previous_summary(candidate: str, problem: str | None) -> None:
    request = summary_request(EARLIER, LATER)
    found = summary_problem(candidate, turns=LATER, request=request, previous=EARLIER)
    assert found == (None if problem is None else f"it {problem}")


def test_the_fallback_keeps_the_previous_summary() -> None:
    fitted = extractive_summary(EARLIER, LATER, budget=160, count=COUNT)
    assert EARLIER.split(". ")[0] in fitted.text and "4817" in fitted.text
    assert (
        summary_problem(
            fitted.text, turns=LATER, request=summary_request(EARLIER, LATER), previous=EARLIER
        )
        is None
    )


# --- through the graph ------------------------------------------------------------------


def only_new_lines(messages: list[BaseMessage]) -> str:
    """A summariser that writes only the new lines' user statements: forgets the summary."""
    if SUMMARY_MARK in messages[0].text:
        body = re.split(r"New lines of the conversation:\n|Conversation:\n", messages[-1].text)[1]
        facts = re.findall(r"^User: ((?:My|I|Hi)[^\n]*)", body, re.MULTILINE)
        return " ".join(facts) or "The user asked questions."
    return "Sure."


def summariser_calls(model: FakeChatModel) -> list[str]:
    return [c[-1].text for c in model.calls if SUMMARY_MARK in c[0].text]


def chat(graph: Any, texts: list[str], name: str = "t1") -> dict[str, Any]:
    state: dict[str, Any] = {}
    for text in texts:
        state = graph.invoke({"messages": [("user", text)]}, thread(name))
    return state


CONVERSATION = [
    "Hi, I'm Priya and my locker code is 4817.",
    "Why is the sky blue?",
    "What is a good name for a goldfish?",
    "My cat Miso is 4 years old.",
    "How do I boil an egg?",
    "Which planet is the largest?",
    "Tell me a joke.",
]


@pytest.mark.parametrize("complies", [True, False])
def test_a_later_summary_that_forgets_the_earlier_one_is_retried_or_replaced(
    make_settings: Callable[..., Settings], complies: bool
) -> None:
    answers: list[str] = []

    def reply(messages: list[BaseMessage]) -> str:
        text = only_new_lines(messages)
        request = messages[-1].text
        if complies and "It must mention:" in request:
            text += " Also: " + request.rsplit("It must mention: ", 1)[1]
        answers.append(text)
        return text

    model = FakeChatModel(reply=reply)
    settings = make_settings(summarisation={"max_turns": 3, "keep_turns": 1})
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    state = chat(graph, CONVERSATION)
    calls = summariser_calls(model)
    # the first summary held Priya and 4817; a later one left them out and was asked again
    assert any(
        c.startswith("Summary so far:") and c.endswith("It must mention: 4817, Priya.")
        for c in calls
    ), calls
    assert "Priya" in state["summary"] and "4817" in state["summary"], state["summary"]
    assert "Miso" in state["summary"]
    if not complies:
        assert 'The user said: "' in state["summary"]


def fact_messages(count: int) -> list[str]:
    shapes = [
        "I am Person{i} Smith, my code is {code}, my dog Rex{i} is {i} years old.",
        "My street is Elm{i} Road number {n} and I work at Firm{i}.",
        "My friend Kim{i} lives in Town{i}; her phone ends in {code}.",
        "I can't stand olives, and my locker {n} holds my Case{i}.",
    ]
    return [
        shapes[i % len(shapes)].format(i=i, code=i * 1111, n=i + 40) for i in range(1, count + 1)
    ]


def test_a_long_thread_stays_usable_and_its_summary_bounded(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """A canned model never writes a usable summary: every fold takes the fallback, which
    grew without bound until even "hi" was "too long" (from turn 58 of 70 at 2048)."""
    model = FakeChatModel(reply="This is a canned reply.")
    settings = make_settings(
        context={"max_prompt_tokens": 320},
        summarisation={"max_turns": 4, "keep_turns": 1, "max_summary_tokens": 60},
    )
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    texts = fact_messages(40)
    with caplog.at_level(logging.WARNING):
        for text in texts:
            state = graph.invoke({"messages": [("user", text)]}, thread())
            assert COUNT(state["summary"]) <= 60
        state = graph.invoke({"messages": [("user", "hi")]}, thread())
    assert state["messages"][-1].text == "This is a canned reply."
    assert re.search(r"^\(\d+ older details left out\.\)$", state["summary"], re.MULTILINE)
    assert "over its budget" in caplog.text
    # the newest folded message's names and numbers are all still there
    cursor = [m.id for m in state["messages"]].index(state["summarised_through"])
    newest = [m.text for m in state["messages"][:cursor] if m.type == "human"][-1]
    assert key_terms(newest) <= summary_terms(state["summary"]), (newest, state["summary"])
    # and every message is still in the thread
    humans = [m.text for m in state["messages"] if m.type == "human"]
    assert humans == [*texts, "hi"]


def test_a_summary_too_big_for_the_prompt_is_shortened_not_blamed_on_the_message(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """A thread whose summary grew before the budget applied (kept in its checkpoint)."""
    model = FakeChatModel(reply="Sure.")
    settings = make_settings(context={"max_prompt_tokens": 300})
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    chat(graph, ["hello"])
    big = "\n".join(f'The user said: "{t}"' for t in fact_messages(30))
    assert COUNT(big) > 600
    graph.update_state(thread(), {"summary": big}, as_node="summarise")
    with caplog.at_level(logging.WARNING, logger="assistant.generate"):
        state = chat(graph, ["hi"])
    assert state["messages"][-1].text == "Sure." and state["prompt_tokens"] <= 300
    system = model.calls[-1][0].text
    assert "Kim30" in system and not re.search(r"\bPerson1\b", system)  # newest kept
    assert "does not fit" in caplog.text
    assert state["summary"] == big  # only the prompt's copy was shortened
    # a message that is itself too long is still the message's fault
    with pytest.raises(MessageTooLongError, match="Shorten the message"):
        chat(graph, ["word " * 400])


def test_a_model_summary_over_the_budget_is_fitted_too(
    make_settings: Callable[..., Settings],
) -> None:
    """The fake model cuts at max_new_tokens words; punctuation makes more tokens than that."""
    summary = "The user, Priya, has locker code 4817, a cat, Miso (4), and asked: sky, eggs, jokes."

    def reply(messages: list[BaseMessage]) -> str:
        return summary if SUMMARY_MARK in messages[0].text else "Sure."

    model = FakeChatModel(reply=reply)
    settings = make_settings(
        summarisation={"max_turns": 3, "keep_turns": 1, "max_summary_tokens": 16}
    )
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    state = chat(graph, CONVERSATION[:5])
    assert COUNT(summary) > 16 and state["summary"]
    assert COUNT(state["summary"]) <= 16, state["summary"]


# --- numbers are kept as they were meant, not by their digits ----------------------------

NUMBER_FACTS = [
    "My rent is 1,250.50 a month.",
    "My alarm is at 5:30.",
    "My flight is on 2026-11-30.",
    "My sister's number is +44 20 7946 0958.",
    "My freezer is at -18 and the fridge at 4.",
    "My raise this year is 7%.",
]


def digits_only(text: str) -> str:
    """A summariser's slip: the separators of every number dropped ("12.50" -> "1250")."""
    return re.sub(r"(?<=\d)[.,:/ -](?=\d)|(?<=\d)%|[+-](?=\d)", "", text)


@pytest.mark.parametrize("fact", NUMBER_FACTS)
def test_a_summary_that_keeps_only_the_digits_has_lost_the_number(fact: str) -> None:
    said = turns(fact)
    request = summary_request("", said)
    candidate = digits_only(fact.replace("My", "Their"))
    assert summary_problem(candidate, turns=said, request=request) is not None, candidate
    # the same sentence with the numbers as written passes
    assert summary_problem(fact.replace("My", "Their"), turns=said, request=request) is None


def test_the_previous_summary_keeps_its_numbers_as_meant() -> None:
    earlier = "The user pays 12.50 a day and wakes at 5:30."
    later = turns("Why is the sky blue?")
    request = summary_request(earlier, later)
    found = summary_problem(
        "The user pays 1250 a day and wakes at 530.", turns=later, request=request, previous=earlier
    )
    assert found == "it leaves out 12.50, 5:30"


@pytest.mark.parametrize("budget", [20, 40, 60, 1000])
def test_a_shortened_summary_shows_the_numbers_as_meant(budget: int) -> None:
    fitted = extractive_summary("", turns(*NUMBER_FACTS), budget=budget, count=COUNT)
    kept = summary_terms(fitted.text)
    lost = terms_of(NUMBER_FACTS) - kept
    assert len(lost) <= fitted.left_out
    assert kept <= terms_of(NUMBER_FACTS), kept  # no number made up of another's digits
    assert "7%" in kept  # the newest survives every budget
    for digits in ("125050", "530", "20261130", "(?<!\\+)442079460958"):
        assert not re.search(digits, fitted.text), fitted.text


@pytest.mark.parametrize("complies", [True, False])
def test_a_summary_that_drops_the_separators_of_numbers_is_retried_or_replaced(
    make_settings: Callable[..., Settings], complies: bool
) -> None:
    def reply(messages: list[BaseMessage]) -> str:
        text = digits_only(only_new_lines(messages))
        request = messages[-1].text
        if complies and "It must mention:" in request:
            text += " Also: " + request.rsplit("It must mention: ", 1)[1]
        return text

    model = FakeChatModel(reply=reply)
    settings = make_settings(summarisation={"max_turns": 3, "keep_turns": 1})
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    state = chat(graph, [*NUMBER_FACTS[:3], "Tell me a joke.", "How do I boil an egg?"])
    calls = summariser_calls(model)
    assert any("It must mention: 1250.50, 2026-11-30, 5:30." in c for c in calls), calls
    assert terms_of(NUMBER_FACTS[:3]) <= summary_terms(state["summary"]), state["summary"]
    if not complies:
        assert 'The user said: "My alarm is at 5:30."' in state["summary"]
