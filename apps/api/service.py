"""The API's turns, without HTTP: a request's fields mapped onto one turn of the graph.

Plain synchronous Python over :func:`apps.turns.stream_turn`, the same function the CLI and
the web UI use, so the thread lock, the stop signal and the stopped-reply bookkeeping are
the same everywhere; the HTTP layer (:mod:`apps.api.app`) runs it in a worker thread.

- With a conversation id, the thread keeps the history: only the last user message is new
  (a new thread starts with the request's earlier messages).
- Without one, the request is a stateless conversation: its earlier user and assistant
  messages become the history of a throwaway thread, deleted after the turn. System
  messages are not passed on: the assistant answers under its own system prompt and
  safety policy (a client's instructions could otherwise switch them off). The earlier
  user messages pass the input guardrail in ``check_input``, as the last one does.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from apps.documents import collection_of, public_source
from apps.queue import ModelQueue, QueuedLocks
from apps.turns import (
    THREAD_ID,
    THREAD_ID_RULE,
    CheckedLocks,
    GenerationStopped,
    NotYourThreadError,
    check_thread,
    safety_verdict,
    stream_turn,
    turn_config,
)
from graph.context import BlankUserNameError, Context, plain_user_name
from graph.settings import Settings
from tools.text import is_blank

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langgraph.graph.state import CompiledStateGraph

    from apps.api.schemas import ChatRequest
    from tools.memory import OpenMemory, ThreadLocks

log = logging.getLogger("assistant.api")


class RequestError(ValueError):
    """The request cannot become a turn; ``param`` names the field at fault."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class UserNotAllowedError(PermissionError):
    """The request names a ``user`` its API key is not bound to."""


class NoSuchThreadError(LookupError):
    """The thread belongs to another user (it is not shown to this one)."""


@dataclass(frozen=True)
class Turn:
    """One turn asked for over HTTP."""

    text: str
    context: Context
    owner: str
    thread_id: str | None = None
    """The conversation to continue; None = stateless (a throwaway thread)."""
    earlier: tuple[BaseMessage, ...] = ()
    """The request's earlier user and assistant messages, oldest first: the history of a
    stateless request or of a new thread (a thread that exists keeps its own)."""


@dataclass
class Outcome:
    """How a turn ended: the reply as kept, and what the ``assistant`` extension shows."""

    reply: str
    streamed: str
    tokens: int
    state: dict[str, Any] = field(default_factory=dict)
    finish_reason: str = "stop"
    """OpenAI's finish reason: ``content_filter`` when the output check withdrew the reply,
    ``length`` when the model hit ``max_new_tokens`` (llama.cpp says so), else ``stop``
    (:func:`finish_reason`)."""


def _thread_id(value: str, param: str) -> str:
    """A thread id the request names (``param``: where), checked against :data:`THREAD_ID`.

    Raises:
        RequestError: It is empty, or breaks the rule.
    """
    if not value:
        raise RequestError(
            f"{param} is empty: name a thread, or leave it out for a stateless request",
            param,
            "invalid_thread_id",
        )
    if not THREAD_ID.fullmatch(value):
        raise RequestError(f"{param}: {THREAD_ID_RULE}", param, "invalid_thread_id")
    return value


def to_turn(
    request: ChatRequest,
    thread_header: str | None,
    settings: Settings,
    *,
    bound_user: str | None = None,
) -> Turn:
    """Map a request's fields onto a turn.

    Args:
        request: The request's body.
        thread_header: The ``X-Thread-Id`` header, if sent.
        settings: The assistant's settings.
        bound_user: The user the request's API key is bound to (``api.keys``); the turn
            runs as that user whatever the body says. None = an unbound key, or none
            configured: the body's ``user`` is taken as it is.

    Raises:
        UserNotAllowedError: ``bound_user`` is set and the body names another ``user``.
        RequestError: The conversation id is empty or malformed, or given twice and
            differs (``X-Thread-Id`` and ``metadata.thread_id``), the last message
            (trailing system/developer messages aside) is not the user's or is empty,
            a message is over ``api.max_message_chars``, or a value is out of range.
    """
    # Sent but empty is a mistake (an unset variable in the client), not "stateless": the
    # client would believe its turns are kept. Leaving the header out is stateless.
    thread_id = (
        _thread_id(thread_header.strip(), "X-Thread-Id") if thread_header is not None else None
    )
    in_body = (request.metadata or {}).get("thread_id")
    if in_body is not None:
        in_body = _thread_id(in_body, "metadata.thread_id")
    if thread_id and in_body and in_body != thread_id:
        raise RequestError(
            "X-Thread-Id and metadata.thread_id name different threads", "metadata.thread_id"
        )
    thread_id = thread_id or in_body
    # Instructions after the question (system/developer, as some clients append them) are
    # not passed on, like every client instruction: the turn answers the last user message.
    index = len(request.messages) - 1
    while index >= 0 and request.messages[index].role in ("system", "developer"):
        index -= 1
    if index < 0:
        raise RequestError("there is no user message to answer", "messages")
    last = request.messages[index]
    if last.role != "user":
        raise RequestError(
            "the last message (after any system or developer messages) must be the user's, "
            f"not the {last.role}'s",
            f"messages.{index}.role",
        )
    text = last.text.strip()
    if is_blank(text):
        raise RequestError("the message is empty", f"messages.{index}.content", "empty_message")
    limit = settings.api.max_message_chars
    # Every message, not only the last: earlier ones become the thread's history.
    for at, message in enumerate(request.messages):
        size = len(message.text.strip())
        if size > limit:
            which = "the message" if at == index else f"earlier message {at}"
            raise RequestError(
                f"{which} is too long ({size} characters; at most {limit})",
                f"messages.{at}.content",
                "message_too_long",
            )
    earlier: list[BaseMessage] = []
    for message in request.messages[:index]:
        if message.role == "user":
            earlier.append(HumanMessage(message.text))
        elif message.role == "assistant":
            earlier.append(AIMessage(message.text))
    user = request.user
    if user is not None:
        # One rule for every key and front end: " ada " is ada, "  " is nobody.
        try:
            user = plain_user_name(user)
        except BlankUserNameError:
            raise RequestError(
                "'user' is blank: leave it out for an anonymous request", "user", "invalid_user"
            ) from None
        except ValueError as exc:  # the page's rule: no invisible characters, no ':'
            raise RequestError(f"'user' is not valid: {exc}", "user", "invalid_user") from None
    if bound_user is not None:
        # The key says who this is: the body may repeat it, not change it.
        if user is not None and user != bound_user:
            raise UserNotAllowedError(
                "this API key acts as one user only: leave out 'user' or send the key's "
                f"own ({bound_user!r})"
            )
        user = bound_user
    if user is not None and user == settings.api.anonymous_user:
        # Its memories and threads are every anonymous caller's: no one may claim them.
        raise RequestError(
            f"the user name {user!r} is reserved for requests without 'user' "
            "(api.anonymous_user); choose another",
            "user",
            "reserved_user",
        )
    max_tokens = request.max_completion_tokens or request.max_tokens
    owner = user or settings.api.anonymous_user
    values: dict[str, Any] = {
        "user_id": owner,
        # The same name reaches the same documents as on the page; never the machine
        # user's chroma.collection unless documents are shared (chroma.shared).
        "collection": collection_of(settings, owner),
        "temperature": request.temperature,
        # top_p 0 keeps only the likeliest token: greedy decoding, said as such (a
        # nucleus of 0 is outside what the backends accept).
        "top_p": request.top_p or None,
        "do_sample": False if request.top_p == 0 else None,
        "max_new_tokens": max_tokens,
        "safety_level": request.safety_level,
    }
    if user is None:
        # Anonymous callers share one user_id: nothing is kept for it, nothing recalled.
        values["remember"] = False
        values["recall"] = False
    if thread_id is None:
        # A throwaway thread: a summary would cost two model calls and be deleted with it.
        values["summarise"] = False
    return Turn(
        text=text,
        context=Context.model_validate({k: v for k, v in values.items() if v is not None}),
        owner=owner,
        thread_id=thread_id,
        earlier=tuple(earlier),
    )


class _NoLocks:
    """Locks for a throwaway thread: nobody else can know its id."""

    def hold(self, thread_id: str, wait: float) -> AbstractContextManager[None]:
        return nullcontext()


class ApiService:
    """The API's back end: one graph, one memory and one model queue for every client.

    Args:
        settings: The assistant's settings.
        memory: The open checkpointer, store and thread locks (``open_memory``).
        model: A chat model instead of the configured one (tests).
        queue: The model queue (shared with other front ends); default: one of
            ``api.queue_size`` places.
    """

    def __init__(
        self,
        settings: Settings,
        memory: OpenMemory,
        *,
        model: BaseChatModel | None = None,
        queue: ModelQueue | None = None,
    ) -> None:
        from graph import build_graph

        self.settings = settings
        self.memory = memory
        self.queue = queue or ModelQueue(settings.api.queue_size)
        self.graph: CompiledStateGraph[Any, Any, Any, Any] = build_graph(
            settings, checkpointer=memory.saver, store=memory.store, model=model
        )

    def check_owner(self, thread_id: str, owner: str) -> bool:
        """Whether the thread exists (it is ``owner``'s: :func:`apps.turns.recorded_owner`).

        Raises:
            NoSuchThreadError: The thread is another user's (one whose checkpoints name no
                one is the machine user's, ``long_term.user_id``).
        """
        try:
            return check_thread(
                self.memory.saver, thread_id, owner, self.settings.long_term.user_id
            )
        except NotYourThreadError:
            raise NoSuchThreadError(thread_id) from None

    def run(
        self,
        turn: Turn,
        stop: threading.Event,
        *,
        wait: float | None = None,
        holding: Callable[[], None] | None = None,
    ) -> Iterator[tuple[str, Any]]:
        """Run one turn: yields ("token", text) while streaming, then ("done", Outcome).

        Args:
            turn: The turn.
            stop: Set it to stop the turn (the client went away).
            wait: Seconds to wait for a busy thread; None = ``api.busy_wait``. The HTTP
                layer waits on its event loop instead and passes 0.
            holding: Called once the turn holds its thread's lock (the HTTP layer's
                request stops counting as one waiting for the thread).

        Raises:
            NoSuchThreadError: The thread is another user's.
            ThreadBusyError: Another turn runs on the thread (after ``wait``).
            QueueFullError: Every place in the model queue is taken.
            GenerationStopped: ``stop`` was set (the client went away).
            InvalidMessageError: The graph refused the message (e.g. too long for the
                prompt budget).
        """
        if stop.is_set():
            # The client left (or the server is stopping) before a worker took the turn:
            # nothing was asked of the thread yet, so nothing is kept.
            raise GenerationStopped()
        # A list, emptied under the thread's lock when the thread exists: run_turn reads it
        # once it holds the lock (the thread has the history; only the last message is new).
        earlier = list(turn.earlier)
        locks: ThreadLocks
        if turn.thread_id is not None:
            thread_id = turn.thread_id
            self.check_owner(thread_id, turn.owner)  # at once, without waiting for the lock

            def check() -> None:
                if holding is not None:
                    holding()
                if self.check_owner(thread_id, turn.owner):
                    earlier.clear()

            locks = CheckedLocks(self.memory.locks, check)
        else:
            thread_id, locks = f"api-tmp-{uuid.uuid4().hex}", _NoLocks()
        streamed: list[str] = []
        state: dict[str, Any] = {}
        try:
            with stream_turn(
                self.graph,
                QueuedLocks(locks, self.queue, stop),
                thread_id,
                turn.text,
                turn.context,
                owner=turn.owner,
                machine_user=self.settings.long_term.user_id,
                wait=self.settings.api.busy_wait if wait is None else wait,
                stop=stop,
                earlier=earlier,
            ) as stream:
                for kind, value in stream:
                    if kind == "token":
                        if value:
                            streamed.append(str(value))
                            yield "token", str(value)
                    else:
                        state = value
        finally:
            if turn.thread_id is None and self.memory.saver is not None:
                self.memory.saver.delete_thread(thread_id)
        messages = state.get("messages") or []
        reply = messages[-1].text if messages else "".join(streamed)
        model_finish = messages[-1].response_metadata.get("finish_reason") if messages else None
        yield (
            "done",
            Outcome(
                reply=reply,
                streamed="".join(streamed),
                tokens=len(streamed),
                state=state,
                finish_reason=finish_reason(state, model_finish),
            ),
        )

    def history(self, thread_id: str, owner: str) -> list[tuple[str, str]]:
        """A thread's messages as (type, text), oldest first (tests and tools)."""
        values = self.graph.get_state(turn_config(thread_id, owner)).values
        return [(m.type, m.text) for m in values.get("messages") or []]


def finish_reason(state: dict[str, Any], model_finish: object) -> str:
    """OpenAI's ``finish_reason`` for a turn that ended with ``state``.

    Args:
        state: The turn's final state.
        model_finish: What the model said of its last reply (``response_metadata``).

    Returns:
        ``content_filter`` when the output check withdrew the model's reply (OpenAI's
        reason for content omitted by a filter: what the model wrote is not what the
        client gets), ``length`` when the model stopped at ``max_new_tokens``, else
        ``stop``. A refused message is ``stop``: the refusal is the whole reply and the
        model wrote nothing that was omitted.
    """
    if safety_verdict(state)["withdrawn"]:
        return "content_filter"
    return "length" if model_finish == "length" else "stop"


def extension(outcome: Outcome, thread_id: str | None) -> dict[str, Any]:
    """The ``assistant`` extension object: thread, concept, safety verdict, sources."""
    state = outcome.state
    retrieval = state.get("retrieval") or {}
    return {
        "thread_id": thread_id,
        "concept": state.get("concept"),
        "safety": safety_verdict(state),
        "retrieval": retrieval.get("status"),
        # File name, page or section and score: where the file lies on the server is
        # nobody's business outside it.
        "sources": [public_source(source) for source in state.get("sources") or []],
        # A reply replaced after streaming (check_output): the kept text is "content" of
        # the final message; a streaming client should show this instead.
        "replaced": outcome.reply.strip() != outcome.streamed.strip(),
    }
