"""One chat turn through the graph, shared by the CLI, the web UI, the API and the bots.

The turn hands on the reply's tokens from the ``generate`` (or ``refuse``) node as the
model writes them (by callback, or as a stream), then the final state; the thread's lock
is held throughout. Each checkpoint records whose turn it was (``user_id`` in its
metadata), so the UI can list a user's threads from the checkpointer alone; a thread whose
checkpoints name no one is the machine user's (:func:`recorded_owner`). A stop signal
ends the generation at the next token: the model call raises, the model's lock is
released, and the caller gets :class:`GenerationStopped` with the text streamed so far.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, RemoveMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from graph.context import Context

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph

    from tools.memory import ThreadLocks

log = logging.getLogger(__name__)

STOPPED_MARK = "[stopped]"
"""Appended to a reply the user stopped, in the thread and on the page."""

REPLY_NODES = ("generate", "refuse")
"""Nodes whose streamed message chunks are the reply the user sees."""


class CheckedLocks:
    """Thread locks that run ``check`` as soon as the thread's lock is held.

    Whose thread it is and whether it exists must be read under the lock: read before it,
    another user's turn could create the thread (or a turn of the same user fill it) while
    this one waits, and this turn would then run on that thread and take it over.
    """

    def __init__(self, locks: ThreadLocks, check: Callable[[], None]) -> None:
        self.locks = locks
        self.check = check

    @contextmanager
    def hold(self, thread_id: str, wait: float) -> Iterator[None]:
        """Hold the thread's lock (as ``ThreadLocks.hold``), then run the check.

        Raises:
            ThreadBusyError: The thread stayed busy for ``wait`` seconds.
            Exception: Whatever the check raises (the lock is released).
        """
        with self.locks.hold(thread_id, wait):
            self.check()
            yield


class GenerationStopped(Exception):
    """The user stopped the turn; ``partial`` is the reply streamed until then."""

    def __init__(self, partial: str = "") -> None:
        super().__init__("generation stopped by the user")
        self.partial = partial


class _QuietStops(logging.Filter):
    """Drop LangChain's "Error in ReplyTokens callback" warning: a stop is no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(
            isinstance(arg, str) and "GenerationStopped" in arg for arg in record.args or ()
        )


logging.getLogger("langchain_core.callbacks.manager").addFilter(_QuietStops())


class ReplyTokens(BaseCallbackHandler):
    """Hands each token of the reply to ``on_token``, in the thread that generates it.

    Only model calls of the reply nodes count: side calls (the judge, a summary) are not
    the reply. Once ``stop`` is set, the reply's next token raises
    :class:`GenerationStopped` instead: LangChain calls ``on_llm_new_token`` from inside
    the model's token loop, and raising there (``raise_error``) unwinds the loop, so
    llama.cpp stops decoding and its lock is free. A stop that comes after the reply
    (while the turn is being remembered or summarised) lets the turn finish as it is.
    """

    raise_error = True

    def __init__(
        self, on_token: Callable[[str], None], stop: threading.Event | None = None
    ) -> None:
        self.on_token = on_token
        self.stop = stop
        self._reply_runs: set[UUID] = set()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the model calls made by a reply node."""
        if (metadata or {}).get("langgraph_node") in REPLY_NODES:
            self._reply_runs.add(run_id)

    def on_llm_new_token(
        self,
        token: Any,
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Hand a reply token on; raise :class:`GenerationStopped` once stopped."""
        if run_id not in self._reply_runs:
            return
        if self.stop is not None and self.stop.is_set():
            raise GenerationStopped()
        if token:
            self.on_token(str(token))


def safety_verdict(state: dict[str, Any]) -> dict[str, Any]:
    """What the front ends show of a turn's safety check.

    Returns:
        ``allowed``, ``level``, ``category``, ``reason`` (None when the state has none),
        and ``withdrawn``: whether a streamed reply was taken back afterwards.
    """
    safety = state.get("safety") or {}
    return {
        "allowed": safety.get("allowed"),
        "level": safety.get("level"),
        "category": safety.get("category"),
        "reason": safety.get("reason"),
        "withdrawn": bool(safety.get("withdrawn")),
    }


THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
"""What a thread id may be, in every front end: 1-128 ASCII letters, digits and ``. _ : -``,
starting with a letter or digit (a UUID fits; so do the bots' ``telegram:<chat_id>``)."""

THREAD_ID_RULE = "1-128 letters, digits and . _ : - (a UUID fits)"


class BadThreadIdError(ValueError):
    """A thread id that breaks :data:`THREAD_ID`; the message shows it printable."""

    def __init__(self, thread_id: str) -> None:
        # ascii(): an id from a terminal may hold undecodable bytes (surrogates) or control
        # characters, which would not print or would garble the message.
        super().__init__(f"thread id {thread_id!a}: {THREAD_ID_RULE}")
        self.thread_id = thread_id


def check_thread_id(thread_id: str) -> str:
    """The thread id, checked against the one rule of every front end (:data:`THREAD_ID`).

    Raises:
        BadThreadIdError: It is empty, too long, or has another character.
    """
    if not THREAD_ID.fullmatch(thread_id):
        raise BadThreadIdError(thread_id)
    return thread_id


class NotYourThreadError(Exception):
    """The thread exists and is another user's: a turn on it is refused.

    Front ends show it as a thread that does not exist for this user (the API's 404, the
    page's "No such thread"), never whose it is.
    """

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"no such thread for this user: {thread_id}")
        self.thread_id = thread_id


def recorded_owner(metadata: Mapping[str, Any] | None, machine_user: str) -> str:
    """Whose a checkpoint is: the one owner rule of every front end (CLI, API, page, bots).

    The ``user_id`` in its metadata: every turn run through this module records it
    (:func:`turn_config`). A checkpoint that names no one was written by the graph itself
    (the quickstart notebook's ``graph.invoke``, the LangGraph dev server, threads from
    before owners were recorded); such a run recalls and keeps the machine user's
    memories (``long_term.user_id``), and its thread is that user's too. It is never
    "anyone's": the first caller to continue it would read it and, as its new checkpoints
    name them, take it from the machine user.

    Args:
        metadata: The checkpoint's metadata (None: none kept).
        machine_user: The machine's user, ``long_term.user_id``.

    Returns:
        The owner's user id.
    """
    owner = (metadata or {}).get("user_id")
    return str(owner) if owner else machine_user


def thread_owner(saver: object, thread_id: str, machine_user: str) -> str | None:
    """Whose thread it is (:func:`recorded_owner` of its newest checkpoint).

    Every turn refuses a thread someone else owns (:func:`run_turn`), so all of a thread's
    checkpoints that name an owner name the same one, and the newest one is read.

    Args:
        saver: The checkpointer (None or no saver: nothing exists).
        thread_id: The thread.
        machine_user: The machine's user (``long_term.user_id``), who owns the threads
            whose checkpoints name no one.

    Returns:
        The owner's user id; None when the thread does not exist.
    """
    if not isinstance(saver, BaseCheckpointSaver):
        return None
    latest = saver.get_tuple({"configurable": {"thread_id": thread_id}})
    if latest is None:
        return None
    return recorded_owner(latest.metadata, machine_user)


def check_thread(saver: object, thread_id: str, user: str, machine_user: str) -> bool:
    """Refuse another user's thread; whether the thread exists.

    Args:
        saver: The checkpointer (None or no saver: nothing exists).
        thread_id: The thread.
        user: Who wants to read or continue it.
        machine_user: The machine's user (``long_term.user_id``; see :func:`recorded_owner`).

    Returns:
        True when the thread exists (and is ``user``'s), False when it does not.

    Raises:
        NotYourThreadError: The thread exists and is someone else's.
    """
    owner = thread_owner(saver, thread_id, machine_user)
    if owner is not None and owner != user:
        raise NotYourThreadError(thread_id)
    return owner is not None


def turn_config(thread_id: str, owner: str) -> RunnableConfig:
    """The run config of one turn: the thread and its owner (checkpoint metadata)."""
    return {"configurable": {"thread_id": thread_id}, "metadata": {"user_id": owner}}


class TurnStream:
    """One turn, running in a worker thread from the moment it is created.

    Iterate it for ("token", text) items, then one ("state", values) item. Starting before
    the first ``next`` lets a front end do its own work (the web page shows the user's
    message) while the model reads the prompt, instead of after it. :meth:`close` (or
    leaving its ``with`` block) before the end stops the generation and frees the model:
    a consumer that goes away must not leave llama.cpp decoding.
    """

    def __init__(
        self, work: Callable[[Callable[[str], None]], dict[str, Any]], stop: threading.Event
    ) -> None:
        self.stop = stop
        # Items: ("token", str), then ("state", dict) or ("error", BaseException).
        self._handoff: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._streamed = False
        self._done = False
        self._pending: tuple[str, Any] | None = None

        def run() -> None:
            try:
                final = work(lambda token: self._handoff.put(("token", token)))
            except BaseException as exc:  # handed to the consumer, raised there
                self._handoff.put(("error", exc))
            else:
                self._handoff.put(("state", final))

        self._worker = threading.Thread(target=run, name="turn", daemon=True)
        self._worker.start()

    def __iter__(self) -> TurnStream:
        return self

    def __next__(self) -> tuple[str, Any]:
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        if self._done:
            raise StopIteration
        try:
            kind, value = self._handoff.get()
        except BaseException:  # interrupted while waiting (Ctrl-C): the consumer goes away
            self.close()
            raise
        if kind == "token":
            self._streamed = True
            return kind, value
        self._done = True
        if kind == "error":
            raise value
        messages = value.get("messages") or []
        if not self._streamed and messages and messages[-1].type == "ai":
            # A reply that was not streamed (a refusal) comes as one token, then the state.
            self._pending = ("state", value)
            return "token", messages[-1].text
        return "state", value

    def close(self) -> None:
        """Stop the generation if the turn is still running (the consumer went away)."""
        self._done = True
        if self._worker.is_alive():
            self.stop.set()

    def __enter__(self) -> TurnStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stream_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    locks: ThreadLocks,
    thread_id: str,
    text: str,
    context: Context,
    *,
    owner: str,
    machine_user: str,
    wait: float,
    stop: threading.Event | None = None,
    earlier: Sequence[BaseMessage] = (),
) -> TurnStream:
    """Start one turn: :func:`run_turn` in a worker thread, its tokens as a stream.

    The CLI and the other front ends get their tokens from the same callback (what one
    streams, the other streams). A reply that did not come from the model token by token
    (a refusal) is yielded as one token, as LangGraph's "messages" stream does. Decode
    measured the same as through that stream on 2 cores (0.87x against 0.86x a bare
    llama.cpp call, same run); the CLI's inline :func:`run_turn` reaches 0.95x or better
    (README "Benchmark"). The turn starts at once, before the first ``next``; closing
    the stream early stops it, which LangGraph's stream left running to its end.

    The thread's lock is held for the whole turn: another turn on the same thread (in
    this process or another) waits for it, up to ``wait`` seconds. A stopped turn keeps
    its partial reply in the thread, marked with :data:`STOPPED_MARK`.

    Args:
        graph: The compiled assistant graph (with its checkpointer).
        locks: The thread locks of the open memory.
        thread_id: The thread to continue.
        text: The user's message.
        context: This run's knobs (safety level, sampling, user).
        owner: Whose thread this is (kept in each checkpoint's metadata).
        machine_user: The machine's user (``long_term.user_id``), who owns the threads
            whose checkpoints name no one (:func:`recorded_owner`).
        wait: Seconds to wait while the thread is busy.
        stop: Set it (from another thread) to end the generation at its next token.
        earlier: Turns to put in the thread before the message (the HTTP API's stateless
            requests bring their conversation along).

    Returns:
        The running turn; iterating it raises what :func:`run_turn` raises:
        ``ThreadBusyError`` (the thread stayed busy for ``wait`` seconds),
        :class:`GenerationStopped` (``stop`` was set; ``partial`` holds what was
        streamed) and ``InvalidMessageError`` (the message is empty or too long; the
        thread is unchanged).
    """
    stop = stop if stop is not None else threading.Event()
    turn = (graph, locks, thread_id, text, context)
    return TurnStream(
        lambda on_token: run_turn(
            *turn,
            owner=owner,
            machine_user=machine_user,
            wait=wait,
            on_token=on_token,
            stop=stop,
            earlier=earlier,
        ),
        stop,
    )


def run_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    locks: ThreadLocks,
    thread_id: str,
    text: str,
    context: Context,
    *,
    owner: str,
    machine_user: str,
    wait: float,
    on_token: Callable[[str], None],
    stop: threading.Event | None = None,
    earlier: Sequence[BaseMessage] = (),
) -> dict[str, Any]:
    """Run one turn in this thread, handing each reply token to ``on_token`` as it comes.

    For a caller that can take tokens by callback (the CLI, the bots; :func:`stream_turn`
    wraps it for the others). The graph runs its nodes in the calling thread and the
    tokens go from the model to ``on_token`` without changing threads: with LangGraph's
    "messages" stream each token passes through two more threads, and on 2 cores those
    wake-ups slowed llama.cpp's own threads (decode 0.84x a bare llama.cpp call against
    0.95x or better this way; README "Benchmark").

    A reply produced without the model (a refusal, a withdrawn reply) sends no tokens:
    the caller shows the last message of the returned state.

    Args:
        graph: The compiled assistant graph (with its checkpointer).
        locks: The thread locks of the open memory.
        thread_id: The thread to continue.
        text: The user's message.
        context: This run's knobs (safety level, sampling, user).
        owner: Whose thread this is (kept in each checkpoint's metadata).
        machine_user: The machine's user (``long_term.user_id``), who owns the threads
            whose checkpoints name no one (:func:`recorded_owner`).
        wait: Seconds to wait while the thread is busy.
        on_token: Called with each reply token, in this thread.
        stop: Set it (from another thread) to end the generation at its next token.
        earlier: Turns to put in the thread before the message (the HTTP API's stateless
            requests bring their conversation along).

    Returns:
        The final state values.

    Raises:
        ThreadBusyError: The thread stayed busy for ``wait`` seconds.
        GenerationStopped: ``stop`` was set; ``partial`` holds what was streamed.
        InvalidMessageError: The message is empty or too long (the thread is unchanged).
        NotYourThreadError: The thread exists and is not ``owner``'s
            (:func:`recorded_owner`).
    """
    streamed: list[str] = []

    def hand_on(token: str) -> None:
        streamed.append(token)
        on_token(token)

    config = turn_config(thread_id, owner)
    config["callbacks"] = [ReplyTokens(hand_on, stop)]
    final: dict[str, Any] = {}
    with locks.hold(thread_id, wait):
        # Under the thread's lock (no one else writes now): a thread is its owner's, and a
        # turn by anyone else would make it theirs (checkpoints record the writer).
        check_thread(graph.checkpointer, thread_id, owner, machine_user)
        # Under the thread's lock, every checkpoint from now on is this turn's.
        started = datetime.now(UTC)
        try:
            # "values" only: LangGraph then runs a step's single node in this thread.
            for values in graph.stream(
                {"messages": [*earlier, ("user", text)]},
                config,
                context=context,
                stream_mode="values",
            ):
                final = cast(dict[str, Any], values)
        except GenerationStopped:
            partial = "".join(streamed).rstrip()
            keep_stopped(graph, thread_id, owner, partial)
            raise GenerationStopped(partial) from None
        except BaseException:
            undo_turn(graph, thread_id, owner, started)
            raise
    return final


def undo_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str, owner: str, since: datetime
) -> None:
    """Put a thread back as it was before a turn that failed (rejected message, no model).

    The turn's first steps are already saved when a later one fails; left there, the
    user's message would wait unanswered in the thread and reach the model as history
    on the next turn, and a thread the turn created would exist with nothing in it. A
    thread the turn created is deleted; in an older one, the messages the turn added
    (the user's, and any earlier turns an API request brought) are removed.

    The turn's checkpoints are those created at ``since`` or later (the caller holds the
    thread's lock from then on, and checkpoint times come from this process's clock).
    Checkpoint metadata cannot mark them: the Redis saver keeps no custom keys. Undoing
    is best effort: if the memory backend fails here too, the turn's own error is what
    the caller should see, so this one is logged.

    Args:
        graph: The compiled graph the turn ran on.
        thread_id: The turn's thread.
        owner: Whose thread it is (kept on the checkpoint that undoes the turn).
        since: When the turn started (an aware datetime).
    """
    saver = graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        return
    config = turn_config(thread_id, owner)
    try:
        latest = first = None
        for snapshot in graph.get_state_history(config):  # newest first
            if snapshot.created_at is None or datetime.fromisoformat(snapshot.created_at) < since:
                break
            latest = latest or snapshot
            first = snapshot
        if latest is None or first is None:
            return  # the turn saved nothing
        if first.parent_config is None:
            saver.delete_thread(thread_id)
            return
        before = {m.id for m in graph.get_state(first.parent_config).values.get("messages", [])}
        now = latest.values.get("messages", [])
        added = [m.id for m in now if m.id and m.id not in before]
        if added:
            # As if `reject` wrote it: the thread's next step is then the end.
            graph.update_state(
                config, {"messages": [RemoveMessage(id=i) for i in added]}, as_node="reject"
            )
    except Exception:
        log.exception("could not undo the failed turn in thread %s", thread_id)


def keep_stopped(
    graph: CompiledStateGraph[Any, Any, Any, Any], thread_id: str, owner: str, partial: str
) -> None:
    """Write a stopped reply into the thread, so its history shows what the user saw.

    The user's message is already in the thread (the turn's first steps were saved); the
    pending rest of the turn is dropped by the next turn's input.
    """
    if graph.checkpointer is None:
        return
    config = turn_config(thread_id, owner)
    if not graph.get_state(config).values:
        return  # stopped before the message was saved: nothing to answer
    reply = f"{partial} {STOPPED_MARK}".strip()
    graph.update_state(
        config,
        {"messages": [AIMessage(reply, response_metadata={"stopped": True})]},
        as_node="generate",
    )
