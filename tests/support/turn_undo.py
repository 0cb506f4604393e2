"""A failed turn leaves its thread as it was: scenarios run on each checkpointer.

The unit tests run them on LangGraph's in-memory saver and the SQLite file the CLI uses;
the integration tests on Redis. Each builds a graph whose fake model can be made to fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from apps.turns import run_turn, turn_config
from graph import build_graph
from graph.context import Context
from graph.errors import MessageTooLongError
from graph.settings import Settings
from tools.memory.locks import FileThreadLocks, ThreadBusyError
from tools.models import FakeChatModel

REPLY = "Noted."


class FlakyModel:
    """What the fake model answers, or the error it raises while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.seen: list[list[BaseMessage]] = []

    def __call__(self, messages: list[BaseMessage]) -> str:
        self.seen.append(list(messages))
        if self.down:
            raise RuntimeError("the model server went away")
        return REPLY


def _graph(settings: Settings, saver: BaseCheckpointSaver[Any], flaky: FlakyModel) -> Any:
    return build_graph(settings, checkpointer=saver, model=FakeChatModel(reply=flaky))


def _turn(graph: Any, locks: FileThreadLocks, thread: str, text: str, **kw: Any) -> Any:
    return run_turn(
        graph,
        locks,
        thread,
        text,
        Context(),
        owner="ada",
        machine_user="ada",
        wait=0,
        on_token=lambda _: None,
        **kw,
    )


def _messages(graph: Any, thread: str) -> list[tuple[str, str]]:
    values = graph.get_state(turn_config(thread, "ada")).values
    return [(m.type, m.text) for m in values.get("messages", [])]


def check_a_failed_first_turn_leaves_no_thread(
    settings: Settings, saver: BaseCheckpointSaver[Any], tmp_path: Path
) -> None:
    flaky = FlakyModel()
    graph, locks = _graph(settings, saver, flaky), FileThreadLocks(tmp_path)
    flaky.down = True
    with pytest.raises(RuntimeError, match="went away"):
        _turn(graph, locks, "new", "Hello there")
    assert saver.get_tuple(turn_config("new", "ada")) is None
    # The thread then starts afresh, as if the failed turn had never been.
    flaky.down = False
    _turn(graph, locks, "new", "Hello again")
    assert _messages(graph, "new") == [("human", "Hello again"), ("ai", REPLY)]


def check_a_failed_turn_leaves_an_old_thread_as_it_was(
    settings: Settings, saver: BaseCheckpointSaver[Any], tmp_path: Path
) -> None:
    flaky = FlakyModel()
    graph, locks = _graph(settings, saver, flaky), FileThreadLocks(tmp_path)
    _turn(graph, locks, "old", "My name is Ada.")
    before = _messages(graph, "old")
    first = saver.get_tuple(turn_config("old", "ada"))
    assert first is not None and first.metadata.get("user_id") == "ada"  # whose thread
    flaky.down = True
    with pytest.raises(RuntimeError):
        _turn(graph, locks, "old", "A question that fails")
    assert _messages(graph, "old") == before
    # The owner is still on the latest checkpoint (the page lists threads by it).
    latest = saver.get_tuple(turn_config("old", "ada"))
    assert latest is not None and latest.metadata.get("user_id") == "ada"
    flaky.down = False
    _turn(graph, locks, "old", "What is my name?")
    sent = [m.text for m in flaky.seen[-1]]
    assert "A question that fails" not in sent
    assert _messages(graph, "old") == [
        *before,
        ("human", "What is my name?"),
        ("ai", REPLY),
    ]


def check_a_rejected_request_keeps_none_of_its_earlier_turns(
    settings: Settings, saver: BaseCheckpointSaver[Any], tmp_path: Path
) -> None:
    # The HTTP API's stateless requests bring earlier turns along with the message.
    graph, locks = _graph(settings, saver, FlakyModel()), FileThreadLocks(tmp_path)
    earlier = [("user", "Earlier question"), ("assistant", "Earlier answer")]
    huge = "word " * 4000
    with pytest.raises(MessageTooLongError):
        _turn(graph, locks, "api", huge, earlier=earlier)
    assert saver.get_tuple(turn_config("api", "ada")) is None
    _turn(graph, locks, "kept", "First")
    before = _messages(graph, "kept")
    with pytest.raises(MessageTooLongError):
        _turn(graph, locks, "kept", huge, earlier=earlier)
    assert _messages(graph, "kept") == before


def check_a_turn_that_never_ran_touches_nothing(
    settings: Settings, saver: BaseCheckpointSaver[Any], tmp_path: Path
) -> None:
    graph, locks = _graph(settings, saver, FlakyModel()), FileThreadLocks(tmp_path)
    _turn(graph, locks, "busy", "First")
    before = _messages(graph, "busy")
    with locks.hold("busy", 0), pytest.raises(ThreadBusyError):
        _turn(graph, locks, "busy", "Second")
    assert _messages(graph, "busy") == before


SCENARIOS = [
    check_a_failed_first_turn_leaves_no_thread,
    check_a_failed_turn_leaves_an_old_thread_as_it_was,
    check_a_rejected_request_keeps_none_of_its_earlier_turns,
    check_a_turn_that_never_ran_touches_nothing,
]
"""Every scenario, for ``pytest.mark.parametrize``."""
