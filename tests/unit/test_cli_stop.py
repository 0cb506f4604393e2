"""Ctrl-C during a CLI turn stops the reply and keeps what streamed, as the page's Stop does."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apps.cli.main import STOPPED_EXIT, ChatSession, _run_turn
from apps.turns import STOPPED_MARK
from graph.settings import Settings
from tools.memory import open_memory
from tools.models import FakeChatModel

LONG = " ".join(f"word{n}" for n in range(400))


@pytest.fixture
def session(make_settings: Callable[..., Settings]) -> Iterator[ChatSession]:
    settings = make_settings()

    def reply(messages: list[Any]) -> str:
        return "You are welcome." if messages[-1].text.endswith("Thanks") else LONG

    model = FakeChatModel(reply=reply, delay=0.02)  # 8 s to the end: stopped long before
    with open_memory(settings) as memory:
        yield ChatSession(settings, "stop-me", None, memory, model=model)


def ctrl_c_after_first_token(session: ChatSession, times: int = 1) -> None:
    """Press Ctrl-C (SIGINT to this process) once the first reply token has arrived."""
    run = session.run

    def run_and_press(text: str, on_token: Callable[[str], None], stop: Any = None) -> Any:
        pressed = threading.Event()

        def token(t: str) -> None:
            on_token(t)
            if not pressed.is_set():
                pressed.set()
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGINT)

        return run(text, token, stop)

    session.run = run_and_press  # type: ignore[method-assign]


def test_the_first_ctrl_c_stops_the_reply_and_the_thread_keeps_it(
    session: ChatSession, capsys: pytest.CaptureFixture[str]
) -> None:
    ctrl_c_after_first_token(session)
    assert _run_turn(session, "Tell me a long story", as_json=False) == STOPPED_EXIT
    assert "stopped" in capsys.readouterr().err
    messages = session.graph.get_state({"configurable": {"thread_id": "stop-me"}}).values[
        "messages"
    ]
    assert messages[-2].text == "Tell me a long story"
    kept = messages[-1].text
    assert kept.startswith("word0") and kept.endswith(STOPPED_MARK)
    assert len(kept.split()) < 400  # ended early, not run to the end
    # The model is free and the thread goes on.
    session.run = ChatSession.run.__get__(session)  # type: ignore[method-assign]
    assert _run_turn(session, "Thanks", as_json=False) == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back


def test_a_second_ctrl_c_interrupts_and_the_turn_is_undone(session: ChatSession) -> None:
    ctrl_c_after_first_token(session, times=2)
    with pytest.raises(KeyboardInterrupt):
        _run_turn(session, "Tell me a long story", as_json=False)
    state = session.graph.get_state({"configurable": {"thread_id": "stop-me"}})
    assert not state.values.get("messages")  # the thread the turn created is gone
