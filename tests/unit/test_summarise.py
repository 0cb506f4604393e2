"""Summarisation: fires on long history, folds whole turns once, shrinks the prompt."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.settings import Settings
from tests.conftest import thread
from tools.models import FakeChatModel

SUMMARY_MARK = "running summary"


def fake_reply(messages: list[BaseMessage]) -> str:
    """Summarise by keeping the user's facts; answer everything else with filler."""
    if SUMMARY_MARK in messages[0].text:
        request = messages[-1].text
        old = request.split("Current summary:\n", 1)[1].split("\n\n", 1)[0]
        facts = re.findall(r"User: (My [^\n]*)", request)
        return " ".join(x for x in [old if old != "(empty)" else "", *facts] if x)
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
        lines = [ln for ln in call.split("Next lines of the conversation:\n")[1].splitlines() if ln]
        convo = [ln for ln in lines if ln.startswith(("User: ", "Assistant: "))]
        assert len(convo) % 2 == 0 and convo[0].startswith("User: ")  # whole turns only


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
