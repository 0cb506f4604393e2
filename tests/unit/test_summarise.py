"""Summarisation: fires on long history, folds whole turns once, shrinks the prompt, and
never keeps a summary that is empty, a placeholder, a copy, or lost the user's facts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.settings import Settings
from tests.conftest import thread
from tools.memory.summaries import (
    extractive_summary,
    required_terms,
    summary_problem,
    summary_request,
    tidy,
)
from tools.models import FakeChatModel
from tools.prompting import Turn

SUMMARY_MARK = "running summary"
COUNT = FakeChatModel().get_num_tokens


def previous_summary(request: str) -> str:
    if not request.startswith("Summary so far:\n"):
        return ""
    return request.removeprefix("Summary so far:\n").split("\n\nNew lines", 1)[0]


def fake_reply(messages: list[BaseMessage]) -> str:
    """Summarise by keeping the user's facts; answer everything else with filler."""
    if SUMMARY_MARK in messages[0].text:
        request = messages[-1].text
        facts = re.findall(r"User: (My [^\n]*)", request)
        return " ".join(x for x in [previous_summary(request), *facts] if x) or "Small talk."
    return "Sure, here is a fairly long answer that takes up some room in the history."


@pytest.fixture
def model() -> FakeChatModel:
    return FakeChatModel(reply=fake_reply)


@pytest.fixture
def graph(make_settings: Callable[..., Settings], model: FakeChatModel) -> Any:
    settings = make_settings(summarisation={"max_turns": 6, "keep_turns": 2, "max_tokens": 5000})
    return build_graph(settings, checkpointer=InMemorySaver(), model=model)


def chat(graph: Any, texts: list[str]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for text in texts:
        state = graph.invoke({"messages": [("user", text)]}, thread())
    return state


def summariser_calls(model: FakeChatModel) -> list[str]:
    return [c[-1].text for c in model.calls if SUMMARY_MARK in c[0].text]


def test_short_history_is_not_summarised(graph: Any, model: FakeChatModel) -> None:
    state = chat(graph, ["hello"] * 6)
    assert state["summary"] == ""
    assert summariser_calls(model) == []


def test_thirty_turns_keep_facts_and_halve_the_prompt(graph: Any, model: FakeChatModel) -> None:
    texts = ["My name is Ada.", "My lucky number is 42."]
    texts += [f"Tell me something about topic {i}, please." for i in range(28)]
    state = chat(graph, texts)
    assert "Ada" in state["summary"] and "42" in state["summary"]
    # the prompt of the last turn carries the summary and is far smaller than the history
    prompts = [c for c in model.calls if SUMMARY_MARK not in c[0].text]
    last_prompt = prompts[-1]
    assert "Ada" in last_prompt[0].text
    history_tokens = sum(model.get_num_tokens(m.text) for m in state["messages"])
    assert state["prompt_tokens"] <= 0.5 * history_tokens


def test_each_turn_is_summarised_once_and_whole(graph: Any, model: FakeChatModel) -> None:
    texts = [f"My fact number {i}." for i in range(20)]
    chat(graph, texts)
    calls = summariser_calls(model)
    assert calls, "the summariser never fired"
    folded = [line for call in calls for line in call.splitlines() if line.startswith("User: ")]
    assert len(folded) == len(set(folded)), "a turn was summarised twice"
    for call in calls:
        body = re.split(r"New lines of the conversation:\n|Conversation:\n", call)[1]
        convo = [ln for ln in body.splitlines() if ln.startswith(("User: ", "Assistant: "))]
        assert len(convo) % 2 == 0 and convo[0].startswith("User: ")  # whole turns only


def test_the_request_has_no_placeholder_to_copy(graph: Any, model: FakeChatModel) -> None:
    chat(graph, [f"My fact number {i}." for i in range(8)])
    first = summariser_calls(model)[0]
    assert "(empty)" not in first and "Summary so far" not in first
    assert first.startswith("Conversation:\n")


def test_summary_is_not_streamed(graph: Any) -> None:
    nodes = set()
    for text in [f"My fact number {i}." for i in range(9)]:
        for _chunk, meta in graph.stream(
            {"messages": [("user", text)]}, thread(), stream_mode="messages"
        ):
            nodes.add(meta["langgraph_node"])
    assert "summarise" not in nodes
    assert graph.get_state(thread()).values["summary"]


def test_summarisation_can_be_switched_off(
    make_settings: Callable[..., Settings], model: FakeChatModel
) -> None:
    settings = make_settings(summarisation={"enabled": False})
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    state = chat(graph, [f"My fact {i}" for i in range(15)])
    assert state["summary"] == "" and summariser_calls(model) == []


# --- what the summariser answers is checked --------------------------------------------


def turns(*pairs: tuple[str, str]) -> list[Turn]:
    return [
        Turn((HumanMessage(q, id=f"h{i}"), AIMessage(a, id=f"a{i}")))
        for i, (q, a) in enumerate(pairs)
    ]


FOLD = turns(
    ("Hi, I'm Priya. I work as a marine biologist.", "Hello Priya! How can I help?"),
    ("Please remember this for later: my locker code is 4817.", "Noted: 4817."),
    ("How long should I boil an egg for a runny yolk?", "About six minutes."),
    ("I have three cats and two dogs.", "That is a lively house!"),
)


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("(empty)", "placeholder"),
        ("None.", "placeholder"),
        ("N/A", "placeholder"),
        ("...", "placeholder"),
        ("User: Hi, I'm Priya.\nAssistant: Hello Priya!", "copies the request"),
        ("Conversation:\nUser: Hi", "copies the request"),
        ("The user works as a marine biologist and has pets.", "leaves out"),
        ("The user, Priya, keeps a locker.", "leaves out"),
    ],
)
def test_unusable_summaries_are_caught(reply: str, problem: str) -> None:
    request = summary_request("", FOLD)
    found = summary_problem(tidy(reply), turns=FOLD, request=request)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "reply",
    [
        "The user's name is Priya; she is a marine biologist. Her locker code is 4817. "
        "She has 3 cats and 2 dogs. She asked how long to boil an egg.",
        "Summary: The user is Priya, a marine biologist, locker code 4817, with three cats "
        "and two dogs.",
    ],
)
def test_a_summary_that_keeps_the_names_and_numbers_is_used(reply: str) -> None:
    request = summary_request("", FOLD)
    assert summary_problem(tidy(reply), turns=FOLD, request=request) is None


def test_required_terms_are_the_users_own_names_and_numbers() -> None:
    assert required_terms(FOLD) == {"priya", "4817", "3", "2"}
    # numbers in questions and in the assistant's answers are not required
    assert required_terms(turns(("What is 17 times 23?", "391, and Paris is in France."))) == set()


def test_the_extractive_summary_keeps_the_users_own_words() -> None:
    fitted = extractive_summary("The user likes tea.", FOLD, budget=160, count=COUNT)
    summary = fitted.text
    assert (fitted.shortened, fitted.left_out) == (0, 0) and fitted.tokens <= 160
    assert summary.startswith("The user likes tea.")
    for fact in ("Hi, I'm Priya.", "my locker code is 4817", "three cats and two dogs"):
        assert fact in summary
    assert "egg" not in summary
    assert summary_problem(summary, turns=FOLD, request=summary_request("", FOLD)) is None


def test_a_truncated_summary_is_cut_to_whole_sentences() -> None:
    assert tidy("The user is Priya. Her locker code is 48", truncated=True) == "The user is Priya."
    assert tidy("Updated summary: The user is Ada.") == "The user is Ada."


def graph_with_summariser(
    make_settings: Callable[..., Settings], answers: list[str]
) -> tuple[Any, FakeChatModel]:
    pending = list(answers)

    def reply(messages: list[BaseMessage]) -> str:
        if SUMMARY_MARK in messages[0].text:
            return pending.pop(0) if pending else "(empty)"
        return "Sure."

    model = FakeChatModel(reply=reply)
    settings = make_settings(summarisation={"max_turns": 4, "keep_turns": 1})
    return build_graph(settings, checkpointer=InMemorySaver(), model=model), model


CONVERSATION = [
    "Hi, I'm Priya. I work as a marine biologist.",
    "Please remember this for later: my locker code is 4817.",
    "What's a good way to keep basil alive indoors?",
    "Which is heavier, a litre of water or a litre of milk?",
    "Why do cats purr?",
]


def test_a_placeholder_is_retried_naming_what_is_missing(
    make_settings: Callable[..., Settings],
) -> None:
    good = "The user is Priya, a marine biologist; locker code 4817. Topics: basil, milk."
    graph, model = graph_with_summariser(make_settings, ["(empty)", good])
    state = chat(graph, CONVERSATION)
    assert state["summary"] == good
    calls = summariser_calls(model)
    assert len(calls) == 2
    assert calls[1].endswith("It must mention: 4817, Priya.")


def test_when_every_attempt_fails_the_users_words_are_kept(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    graph, model = graph_with_summariser(make_settings, ["(empty)", "The user likes basil."])
    state = chat(graph, CONVERSATION)
    assert len(summariser_calls(model)) == 2
    assert "Hi, I'm Priya." in state["summary"] and "4817" in state["summary"]
    assert "(empty)" not in state["summary"]
    # the turns were folded: the cursor moved, and the next prompt carries the summary
    assert state["summarised_through"] is not None
    assert "unusable" in caplog.text
