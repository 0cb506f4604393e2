"""One owner rule for every front end: a thread whose checkpoints name no one (the quickstart
notebook's ``graph.invoke``, the LangGraph dev server) is the machine user's
(``long_term.user_id``), never the first caller's to read and take over."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from apps.api.service import ApiService, NoSuchThreadError, Turn
from apps.cli.main import ChatSession, _command, _run_turn
from apps.ui.service import ChatService, Controls, UiError
from graph.context import Context
from graph.settings import Settings
from tools.memory import OpenMemory
from tools.memory.locks import LocalThreadLocks
from tools.models import FakeChatModel

SECRET = "My bank PIN is 9931"
ASK = "what did I tell you earlier?"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(prompts={"semantic": False}, safety={"semantic": False})


@pytest.fixture
def shared(settings: Settings) -> OpenMemory:
    """One memory every front end opens, holding a thread the notebook wrote."""
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    session = ChatSession(settings, "x", None, memory, model=FakeChatModel(reply="ok"))
    session.graph.invoke(
        {"messages": [("user", SECRET)]}, {"configurable": {"thread_id": "nb-secret"}}
    )
    return memory


def _newest(memory: OpenMemory) -> Any:
    assert memory.saver is not None
    return memory.saver.get_tuple({"configurable": {"thread_id": "nb-secret"}})


def _prompts(model: FakeChatModel) -> str:
    return " ".join(m.text for call in model.calls for m in call)


def test_the_cli_refuses_a_notebook_thread_to_another_user_and_keeps_it_the_machine_users(
    settings: Settings, shared: OpenMemory, capsys: pytest.CaptureFixture[str]
) -> None:
    model = FakeChatModel(reply="ok")
    before = _newest(shared).checkpoint["id"]
    bob = ChatSession(settings, "nb-secret", None, shared, user="bob", model=model)
    assert _run_turn(bob, ASK, as_json=False) == 1
    assert "thread nb-secret is another user's" in capsys.readouterr().err
    assert model.calls == [] and _newest(shared).checkpoint["id"] == before
    # The machine's user (no --user) is not locked out: the thread is still theirs.
    me = ChatSession(settings, "nb-secret", None, shared, model=model)
    assert _run_turn(me, ASK, as_json=False) == 0
    assert SECRET in _prompts(model)
    assert _newest(shared).metadata["user_id"] == settings.long_term.user_id


def test_the_page_and_the_api_apply_the_same_rule(settings: Settings, shared: OpenMemory) -> None:
    model = FakeChatModel(reply="ok")
    page = ChatService(settings, shared, model=model)
    with pytest.raises(UiError, match="No such thread"):
        list(page.turn("bob", "nb-secret", ASK, Controls(), session="s"))
    api = ApiService(settings, shared, model=model)
    bob = Turn(text=ASK, context=Context(user_id="bob"), owner="bob", thread_id="nb-secret")
    with pytest.raises(NoSuchThreadError):
        list(api.run(bob, threading.Event()))
    assert model.calls == []
    assert "user_id" not in _newest(shared).metadata
    me = settings.long_term.user_id
    mine = Turn(text=ASK, context=Context(user_id=me), owner=me, thread_id="nb-secret")
    assert [k for k, _ in api.run(mine, threading.Event())][-1] == "done"
    assert SECRET in _prompts(model)


def test_interactive_thread_switch_to_another_users_thread_is_refused(
    settings: Settings, shared: OpenMemory, capsys: pytest.CaptureFixture[str]
) -> None:
    model = FakeChatModel(reply="ok")
    ada = ChatSession(settings, "t-ada", None, shared, user="ada", model=model)
    assert _run_turn(ada, "I am Ada.", as_json=False) == 0
    capsys.readouterr()
    bob = ChatSession(settings, "bob-1", None, shared, user="bob", model=model)
    for other in ("t-ada", "nb-secret"):
        assert _command(bob, f"/thread {other}") is True
        err = capsys.readouterr().err
        assert f"thread {other} is another user's: not switched; still in thread bob-1" in err
        assert "--user" not in err and "--thread" not in err
        assert bob.thread_id == "bob-1"
    # What must not change: a new thread, a fresh one, and one's own are switched to.
    for mine in ("bob-2", "bob-1", ""):
        _command(bob, f"/thread {mine}".strip())
        assert "another user's" not in capsys.readouterr().err
        assert bob.thread_id == (mine or bob.thread_id)
    _command(ada, "/thread t-ada")
    assert ada.thread_id == "t-ada" and "another user's" not in capsys.readouterr().err


def test_a_thread_switch_whose_owner_cannot_be_read_is_a_clear_error(
    settings: Settings,
    shared: OpenMemory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tools.memory import MemoryBackendError

    bob = ChatSession(settings, "bob-1", None, shared, user="bob", model=FakeChatModel(reply="ok"))

    def down(config: Any) -> Any:
        raise MemoryBackendError("Redis at redis://127.0.0.1:1 is unreachable")

    monkeypatch.setattr(shared.saver, "get_tuple", down)
    assert _command(bob, "/thread elsewhere") is True
    err = capsys.readouterr().err
    assert "memory error" in err and "unreachable" in err
    assert bob.thread_id == "bob-1"
