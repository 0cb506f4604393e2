"""One turn through apps.turns: by callback in the calling thread (run_turn, the CLI and the
bots) and as a stream from a worker thread (stream_turn, the web UI and the API)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from apps.turns import (
    BadThreadIdError,
    GenerationStopped,
    NotYourThreadError,
    ReplyTokens,
    check_thread,
    check_thread_id,
    recorded_owner,
    run_turn,
    stream_turn,
    thread_owner,
)
from graph import build_graph
from graph.context import Context
from graph.errors import InvalidMessageError
from graph.settings import Settings
from tools.memory.locks import FileThreadLocks, ThreadBusyError
from tools.models import FakeChatModel

# Words that start no listed phrase ("three" may: "three way"), so the masker releases
# them one by one as the next word completes.
REPLY = "Alpha beta gamma, delta epsilon zeta eta theta."
MACHINE = "machine-user"
"""The machine's user (``long_term.user_id``) the turns here are told of."""


@pytest.fixture
def graph(make_settings: Callable[..., Settings]) -> Any:
    return build_graph(
        make_settings(), checkpointer=InMemorySaver(), model=FakeChatModel(reply=REPLY)
    )


def run_as_ada(
    graph: Any,
    locks: FileThreadLocks,
    thread_id: str,
    text: str,
    on_token: Callable[[str], None],
    context: Context | None = None,
) -> dict[str, Any]:
    """``run_turn`` for the user ada, not waiting for a busy thread."""
    return run_turn(
        graph,
        locks,
        thread_id,
        text,
        context or Context(),
        owner="ada",
        machine_user=MACHINE,
        wait=0,
        on_token=on_token,
    )


def stream_as_ada(
    graph: Any, locks: FileThreadLocks, thread_id: str, text: str, context: Context | None = None
) -> Any:
    """``stream_turn`` for the user ada, not waiting for a busy thread."""
    return stream_turn(
        graph,
        locks,
        thread_id,
        text,
        context or Context(),
        owner="ada",
        machine_user=MACHINE,
        wait=0,
    )


def test_reply_tokens_reach_the_callback_in_order_in_the_calling_thread(
    graph: Any, tmp_path: Path
) -> None:
    seen: list[tuple[str, int]] = []
    state = run_as_ada(
        graph,
        FileThreadLocks(tmp_path),
        "t1",
        "hello",
        on_token=lambda token: seen.append((token, threading.get_ident())),
    )
    assert len(seen) > 3  # token by token, not the whole reply at once
    assert "".join(token for token, _ in seen) == REPLY == state["messages"][-1].text
    assert {ident for _, ident in seen} == {threading.get_ident()}


def test_the_callback_gets_what_the_stream_gets(graph: Any, tmp_path: Path) -> None:
    locks = FileThreadLocks(tmp_path)
    tokens: list[str] = []
    inline = run_as_ada(graph, locks, "a", "hi there", on_token=tokens.append)
    streamed = list(stream_as_ada(graph, locks, "b", "hi there"))
    assert tokens == [value for kind, value in streamed if kind == "token" and value]
    assert inline["messages"][-1].text == streamed[-1][1]["messages"][-1].text


def test_a_refusal_sends_no_tokens_and_is_the_last_message(graph: Any, tmp_path: Path) -> None:
    tokens: list[str] = []
    state = run_as_ada(
        graph,
        FileThreadLocks(tmp_path),
        "t1",
        "How do I build a pipe bomb?",
        on_token=tokens.append,
        context=Context(safety_level="strict"),
    )
    assert tokens == []
    assert state["messages"][-1].type == "ai" and state["messages"][-1].text
    assert not state["safety"]["allowed"]


def test_bad_input_and_a_busy_thread_raise_as_for_stream_turn(graph: Any, tmp_path: Path) -> None:
    locks = FileThreadLocks(tmp_path)
    with pytest.raises(InvalidMessageError):
        run_as_ada(graph, locks, "t1", "   ", on_token=print)
    with locks.hold("t1", 0), pytest.raises(ThreadBusyError):
        run_as_ada(graph, locks, "t1", "hi", on_token=print)


def test_the_stream_hands_each_token_to_the_consumers_thread(graph: Any, tmp_path: Path) -> None:
    seen: list[int] = []
    for kind, _value in stream_as_ada(graph, FileThreadLocks(tmp_path), "t1", "hello"):
        if kind == "token":
            seen.append(threading.get_ident())
    assert len(seen) > 3
    assert set(seen) == {threading.get_ident()}  # the consumer's own thread


def test_the_stream_yields_a_refusal_as_one_token_then_the_state(
    graph: Any, tmp_path: Path
) -> None:
    strict = Context(safety_level="strict")
    locks = FileThreadLocks(tmp_path)
    events = list(stream_as_ada(graph, locks, "t1", "How do I build a pipe bomb?", strict))
    assert [kind for kind, _ in events] == ["token", "state"]
    state = events[-1][1]
    assert not state["safety"]["allowed"]
    assert events[0][1] == state["messages"][-1].text != ""


def test_the_stream_raises_what_the_turn_raises(graph: Any, tmp_path: Path) -> None:
    locks = FileThreadLocks(tmp_path)
    with pytest.raises(InvalidMessageError):
        list(stream_as_ada(graph, locks, "t1", "   "))
    with locks.hold("t1", 0), pytest.raises(ThreadBusyError):
        list(stream_as_ada(graph, locks, "t1", "hi"))


@pytest.mark.parametrize("read_first", [True, False], ids=["after-a-token", "before-any"])
def test_a_consumer_that_goes_away_stops_the_turn_and_frees_the_thread(
    make_settings: Callable[..., Settings], tmp_path: Path, read_first: bool
) -> None:
    model = FakeChatModel(reply=" ".join(f"w{i}" for i in range(500)), delay=0.01)
    graph = build_graph(make_settings(), checkpointer=InMemorySaver(), model=model)
    locks = FileThreadLocks(tmp_path)
    with stream_as_ada(graph, locks, "t1", "go on") as stream:
        if read_first:
            next(kind for kind, _ in stream if kind == "token")
        else:  # the page went away while showing the message: nothing was read yet
            _wait_for(lambda: bool(model.calls))
    # The worker ends at its next token and lets the thread go: a new turn can hold it
    # (waiting up to 30 s, far more than one token takes; the whole reply would take 5 s).
    with locks.hold("t1", 30):
        pass
    reply = graph.get_state({"configurable": {"thread_id": "t1"}}).values["messages"][-1].text
    assert reply.endswith("[stopped]")
    assert len(reply.split()) < 500


def test_the_turn_starts_before_the_first_token_is_asked_for(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    model = FakeChatModel(reply=REPLY)
    graph = build_graph(make_settings(), checkpointer=InMemorySaver(), model=model)
    stream = stream_turn(
        graph,
        FileThreadLocks(tmp_path),
        "t1",
        "hi",
        Context(),
        owner="a",
        machine_user=MACHINE,
        wait=0,
    )
    _wait_for(lambda: bool(model.calls))  # the model was called while nobody iterated
    items = list(stream)
    assert "".join(value for kind, value in items if kind == "token") == REPLY
    assert items[-1][0] == "state"
    assert list(stream) == []  # a finished stream stays finished


def test_a_reply_that_was_not_streamed_comes_as_one_token_then_the_state(
    graph: Any, tmp_path: Path
) -> None:
    locks = FileThreadLocks(tmp_path)
    level = Context(safety_level="strict")
    text = "how do I build a pipe bomb"
    items = list(stream_as_ada(graph, locks, "t1", text, level))
    assert [kind for kind, _ in items] == ["token", "state"]
    assert items[0][1] == items[1][1]["messages"][-1].text != REPLY


def _wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll until ``condition`` holds; fail after ``seconds`` (a bound, not a timing)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("node", "stops"),
    [("generate", True), ("refuse", True), ("summarise", False), ("retrieve", False)],
)
def test_stop_ends_only_the_model_calls_of_the_reply(node: str, stops: bool) -> None:
    event = threading.Event()
    seen: list[str] = []
    handler = ReplyTokens(seen.append, event)
    run_id = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run_id, metadata={"langgraph_node": node})
    handler.on_llm_new_token("a", run_id=run_id)  # not stopped yet
    event.set()
    if stops:
        with pytest.raises(GenerationStopped):
            handler.on_llm_new_token("b", run_id=run_id)
    else:
        handler.on_llm_new_token("b", run_id=run_id)
    assert seen == (["a"] if stops else [])  # only the reply's tokens are handed on


def _turn(graph: Any, locks: FileThreadLocks, owner: str, thread: str = "own1") -> Any:
    return run_turn(
        graph, locks, thread, "hi", Context(user_id=owner), owner=owner, machine_user=MACHINE,
        wait=0, on_token=lambda _t: None,
    )  # fmt: skip


def test_a_thread_stays_its_creators_when_someone_else_tries_to_write(
    graph: Any, tmp_path: Path
) -> None:
    locks = FileThreadLocks(tmp_path)
    _turn(graph, locks, "carol")
    with pytest.raises(NotYourThreadError):
        _turn(graph, locks, "machine-user")
    assert thread_owner(graph.checkpointer, "own1", MACHINE) == "carol"
    _turn(graph, locks, "carol")  # her own thread still takes her turns
    history = graph.get_state({"configurable": {"thread_id": "own1"}}).values["messages"]
    assert [m.text for m in history if m.type == "human"] == ["hi", "hi"]  # nothing of his


def test_the_owner_check_leaves_new_threads_and_other_threads_alone(
    graph: Any, tmp_path: Path
) -> None:
    locks = FileThreadLocks(tmp_path)
    assert thread_owner(graph.checkpointer, "fresh", MACHINE) is None
    _turn(graph, locks, "carol", "fresh")
    _turn(graph, locks, "dave", "other")
    assert thread_owner(graph.checkpointer, "other", MACHINE) == "dave"
    assert thread_owner(None, "other", MACHINE) is None


def _notebook_turn(graph: Any, thread: str, text: str) -> None:
    """A turn as the quickstart notebook runs one: the graph itself, no owner recorded."""
    graph.invoke({"messages": [("user", text)]}, {"configurable": {"thread_id": thread}})


def _newest_metadata(graph: Any, thread: str) -> dict[str, Any]:
    latest = graph.checkpointer.get_tuple({"configurable": {"thread_id": thread}})
    return dict(latest.metadata or {})


@pytest.mark.parametrize("stream", [False, True])
def test_a_thread_that_names_no_owner_is_the_machine_users_not_anyones(
    graph: Any, tmp_path: Path, stream: bool
) -> None:
    locks = FileThreadLocks(tmp_path)
    _notebook_turn(graph, "nb-secret", "My bank PIN is 9931")
    assert "user_id" not in _newest_metadata(graph, "nb-secret")
    assert thread_owner(graph.checkpointer, "nb-secret", MACHINE) == MACHINE
    for intruder in ("bob", "api", "telegram:42"):
        with pytest.raises(NotYourThreadError):
            if stream:
                list(
                    stream_turn(
                        graph, locks, "nb-secret", "what did I tell you earlier?",
                        Context(user_id=intruder), owner=intruder, machine_user=MACHINE, wait=0,
                    )
                )  # fmt: skip
            else:
                _turn(graph, locks, intruder, "nb-secret")
    # Not taken over: no checkpoint of theirs, and the machine's user continues it.
    assert "user_id" not in _newest_metadata(graph, "nb-secret")
    _turn(graph, locks, MACHINE, "nb-secret")
    assert _newest_metadata(graph, "nb-secret")["user_id"] == MACHINE
    with pytest.raises(NotYourThreadError):
        _turn(graph, locks, "bob", "nb-secret")
    history = graph.get_state({"configurable": {"thread_id": "nb-secret"}}).values["messages"]
    assert [m.text for m in history if m.type == "human"] == ["My bank PIN is 9931", "hi"]


def test_the_owner_rule_leaves_owned_and_new_threads_as_they_were(
    graph: Any, tmp_path: Path
) -> None:
    locks = FileThreadLocks(tmp_path)
    _turn(graph, locks, "bob", "bobs")  # anyone starts a new thread
    assert thread_owner(graph.checkpointer, "bobs", MACHINE) == "bob"
    with pytest.raises(NotYourThreadError):  # the machine's user gets no one else's either
        _turn(graph, locks, MACHINE, "bobs")
    _turn(graph, locks, "bob", "bobs")  # and continues it
    assert thread_owner(graph.checkpointer, "bobs", MACHINE) == "bob"


@pytest.mark.parametrize(
    ("metadata", "owner"),
    [
        (None, MACHINE),
        ({}, MACHINE),
        ({"user_id": ""}, MACHINE),
        ({"user_id": None}, MACHINE),
        ({"source": "loop", "step": 1}, MACHINE),
        ({"user_id": "ada"}, "ada"),
        ({"user_id": MACHINE}, MACHINE),
    ],
)
def test_recorded_owner_gives_a_checkpoint_that_names_no_one_to_the_machine_user(
    metadata: dict[str, Any] | None, owner: str
) -> None:
    assert recorded_owner(metadata, MACHINE) == owner


def test_check_thread_says_whether_the_thread_exists(graph: Any, tmp_path: Path) -> None:
    assert check_thread(graph.checkpointer, "none-yet", "bob", MACHINE) is False
    _turn(graph, FileThreadLocks(tmp_path), "bob", "b1")
    assert check_thread(graph.checkpointer, "b1", "bob", MACHINE) is True
    with pytest.raises(NotYourThreadError):
        check_thread(graph.checkpointer, "b1", MACHINE, MACHINE)
    assert check_thread(None, "b1", MACHINE, MACHINE) is False  # memory off: nothing exists


@pytest.mark.parametrize(
    "good", ["own1", "5b0f6c4e-4a1d-4d0e-9a51-0f3c2b7e9d11", "telegram:-1001", "a", "x" * 128]
)
def test_one_thread_id_rule_takes_what_every_front_end_makes(good: str) -> None:
    assert check_thread_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "my thread with spaces", "\udcff", "own1\n", "-lead", "x" * 129, "caf\u00e9"]
)
def test_a_bad_thread_id_is_a_clear_printable_error(bad: str) -> None:
    with pytest.raises(BadThreadIdError) as info:
        check_thread_id(bad)
    message = str(info.value)
    message.encode("ascii")  # printable on any terminal: no raw byte, no control character
    assert "1-128 letters, digits" in message
