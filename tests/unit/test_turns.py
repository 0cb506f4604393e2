"""One turn handed to a callback in the calling thread (apps.turns.run_turn), as the CLI runs it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from apps.turns import run_turn, stream_turn
from graph import build_graph
from graph.context import Context
from graph.errors import InvalidMessageError
from graph.settings import Settings
from tools.memory.locks import FileThreadLocks, ThreadBusyError
from tools.models import FakeChatModel

REPLY = "One two three, four five six."


@pytest.fixture
def graph(make_settings: Callable[..., Settings]) -> Any:
    return build_graph(
        make_settings(), checkpointer=InMemorySaver(), model=FakeChatModel(reply=REPLY)
    )


def test_reply_tokens_reach_the_callback_in_order_in_the_calling_thread(
    graph: Any, tmp_path: Path
) -> None:
    seen: list[tuple[str, int]] = []
    state = run_turn(
        graph,
        FileThreadLocks(tmp_path),
        "t1",
        "hello",
        Context(),
        owner="ada",
        wait=0,
        on_token=lambda token: seen.append((token, threading.get_ident())),
    )
    assert len(seen) > 3  # token by token, not the whole reply at once
    assert "".join(token for token, _ in seen) == REPLY == state["messages"][-1].text
    assert {ident for _, ident in seen} == {threading.get_ident()}


def test_the_callback_gets_what_the_messages_stream_gets(graph: Any, tmp_path: Path) -> None:
    locks = FileThreadLocks(tmp_path)
    tokens: list[str] = []
    inline = run_turn(
        graph, locks, "a", "hi there", Context(), owner="ada", wait=0, on_token=tokens.append
    )
    streamed = list(stream_turn(graph, locks, "b", "hi there", Context(), owner="ada", wait=0))
    assert tokens == [value for kind, value in streamed if kind == "token" and value]
    assert inline["messages"][-1].text == streamed[-1][1]["messages"][-1].text


def test_a_refusal_sends_no_tokens_and_is_the_last_message(graph: Any, tmp_path: Path) -> None:
    tokens: list[str] = []
    state = run_turn(
        graph,
        FileThreadLocks(tmp_path),
        "t1",
        "How do I build a pipe bomb?",
        Context(safety_level="strict"),
        owner="ada",
        wait=0,
        on_token=tokens.append,
    )
    assert tokens == []
    assert state["messages"][-1].type == "ai" and state["messages"][-1].text
    assert not state["safety"]["allowed"]


def test_bad_input_and_a_busy_thread_raise_as_for_stream_turn(graph: Any, tmp_path: Path) -> None:
    locks = FileThreadLocks(tmp_path)
    with pytest.raises(InvalidMessageError):
        run_turn(graph, locks, "t1", "   ", Context(), owner="ada", wait=0, on_token=print)
    with locks.hold("t1", 0), pytest.raises(ThreadBusyError):
        run_turn(graph, locks, "t1", "hi", Context(), owner="ada", wait=0, on_token=print)
