"""What the web page does, without the page: turns, threads, documents, memories.

Plain Python over the same functions the CLI uses (:func:`apps.turns.stream_turn`, the
checkpointer, ``tools.documents.ingest``, ``tools.memory.long_term``), so it is unit-tested
on the fake model without a browser. Nothing here is per browser session: each call gets
the user and the session's generation controls as arguments, and the only shared state is
what every session shares anyway (the graph, its model, the stores) plus the stop signals
of the turns running in each session. Documents are per user like threads and memories:
the collection a user uploads into and is answered from is the one the API gives the same
name (:func:`apps.documents.collection_of`), passed to retrieval in the run's context.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError
from redis.exceptions import RedisError

from apps.documents import NoUserError, collection_of
from apps.documents import user_collection as _user_collection
from apps.turns import (
    STOPPED_MARK,
    THREAD_ID,
    THREAD_ID_RULE,
    CheckedLocks,
    GenerationStopped,
    NotYourThreadError,
    recorded_owner,
    safety_verdict,
    stream_turn,
    thread_owner,
    turn_config,
)
from graph.context import BlankUserNameError, Context, plain_user_name
from graph.errors import InvalidMessageError, MessageTooLongError
from graph.settings import SAFETY_LEVELS, Settings
from tools.documents.loaders import SUPPORTED
from tools.text import is_blank, limit_marks, shorten

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel
    from langgraph.graph.state import CompiledStateGraph

    from tools.documents.ingest import IngestProgress
    from tools.documents.store import DocumentStore, SourceInfo
    from tools.memory import OpenMemory
    from tools.memory.backends import Saver
    from tools.memory.long_term import Memory

log = logging.getLogger("assistant.ui")

MAX_MESSAGE_CHARS = 8000
"""Longest message the page sends; the graph's token budget refuses long ones anyway,
this only spares the server a huge paste."""

UPLOAD_KINDS = tuple(SUPPORTED)
"""File types the upload accepts (the ingest's folder walk reads the same ones). The
browser's file picker offers only these, and :meth:`ChatService.ingest` skips any other
file it is sent (an explicit file of another type would be read as plain text)."""


class UiError(Exception):
    """Something the page shows the user as a message (never a traceback)."""


NO_THREADS = "Memory is off (memory.backend = none): no threads are kept."
NO_MEMORIES = "Long-term memory is off: nothing is kept."


STORE_FAILURES: tuple[type[Exception], ...] = (RedisError, sqlite3.Error)
"""What the thread and memory stores raise when their backend fails while running (Redis
gone, the SQLite file locked, unreadable or on a full disk). The page says so; startup
problems are :class:`~tools.memory.MemoryBackendError` and handled the same way."""


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn a failure of the thread or memory store into a :class:`UiError` the page shows.

    Raises:
        UiError: The store failed; the message names the backend's reason.
    """
    from tools.memory import MemoryBackendError

    failures: tuple[type[Exception], ...] = (MemoryBackendError, *STORE_FAILURES)
    try:
        yield
    except failures as exc:
        log.warning("memory store failed: %s", exc)
        raise UiError(f"The memory store is unavailable: {exc}") from None


@dataclass(frozen=True)
class Controls:
    """One browser session's generation controls (the seed UI's sliders)."""

    temperature: float = 0.2
    top_p: float = 0.9
    max_new_tokens: int = 256
    do_sample: bool = True
    safety_level: str = "moderate"

    @classmethod
    def from_settings(cls, settings: Settings) -> Controls:
        """The controls a fresh page starts with: the configured defaults."""
        gen = settings.generation
        return cls(
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_new_tokens=gen.max_new_tokens,
            do_sample=gen.do_sample,
            safety_level=settings.safety.sensitivity_level,
        )


def make_context(user: str, controls: Controls, collection: str | None = None) -> Context:
    """The run context of one turn: the user, their collection and the session's controls.

    Args:
        user: The signed-in user (``user_id`` of the run).
        controls: The session's generation controls.
        collection: The document collection retrieval searches (None: ``chroma.collection``).

    Raises:
        UiError: A control is out of range (the message says which).
    """
    numbers: dict[str, float | int] = {}
    for name, kind in (("temperature", float), ("top_p", float), ("max_new_tokens", int)):
        value = getattr(controls, name)
        try:
            numbers[name] = kind(value)  # a slider may send 256.0 for 256
        except (TypeError, ValueError):
            raise UiError(
                f"invalid generation settings: {name}: not a number ({value!r})"
            ) from None
    try:
        return Context.model_validate(
            {
                "user_id": user,
                "collection": collection,
                **numbers,
                "do_sample": bool(controls.do_sample),
                "safety_level": controls.safety_level,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UiError(f"invalid generation settings: {problems}") from None


def check_user(name: str | None) -> str:
    """A valid user name, stripped.

    Raises:
        UiError: The name is empty or has characters other than letters, digits and
            ``_ . @ + -`` and spaces (at most 64).
    """
    try:
        return plain_user_name(name or "")
    except BlankUserNameError:
        raise UiError("Enter a user name first.") from None
    except ValueError as exc:  # the rule of every front end (graph.settings.USER_NAME)
        raise UiError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


def user_collection(user: str) -> str:
    """The document collection of one page user (:func:`apps.documents.user_collection`).

    Raises:
        UiError: The name is empty.
    """
    try:
        return _user_collection(user)
    except NoUserError:
        raise UiError("Enter a user name first.") from None


def check_message(text: str | None) -> str:
    """The message to send, or a :class:`UiError` saying why it cannot be sent."""
    text = (text or "").strip()
    if is_blank(text):
        raise UiError("The message is empty; nothing was sent.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise UiError(
            f"The message is too long ({len(text)} characters; at most {MAX_MESSAGE_CHARS})."
        )
    return text


def check_thread(thread_id: object) -> str:
    """A thread id that keeps the rule of every front end (:data:`apps.turns.THREAD_ID`).

    The page makes UUIDs, but the id it sends back may be one the browser kept (its storage
    is the user's to edit) or one another front end refused: the CLI and the API refuse
    an empty id, control characters or 5,000 characters, and so does the page.

    Raises:
        UiError: It is not a string, is empty, too long, or has another character; the
            message shows it printable and short.
    """
    if isinstance(thread_id, str) and THREAD_ID.fullmatch(thread_id):
        return thread_id
    shown = (
        ascii(thread_id[:40]) + ("…" if len(thread_id) > 40 else "")
        if isinstance(thread_id, str)
        else type(thread_id).__name__
    )
    raise UiError(f"Not a thread id: {shown} ({THREAD_ID_RULE}).")


@dataclass(frozen=True)
class ThreadSummary:
    """One of a user's threads, as the thread list shows it."""

    thread_id: str
    title: str
    updated: str
    """Time of its newest checkpoint (ISO 8601)."""


@dataclass(frozen=True)
class _Listed:
    """What the thread list read of one thread (:meth:`ChatService.threads`)."""

    mark: tuple[int, str]
    """Its checkpoints and newest mark when read (:class:`tools.memory.ThreadInfo`)."""
    owner: str
    title: str
    updated: str


@dataclass
class TurnResult:
    """How a turn ended: the reply as kept, its sources and its diagnostics."""

    reply: str
    stopped: bool = False
    withdrawn: bool = False
    sources: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)


def shortened(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut between two grapheme clusters.

    A character is what a reader sees as one (:data:`tools.text.GRAPHEME`): a cut never
    leaves half a flag, an emoji without its skin tone or a family without its members,
    nor drops the accent of an ``e`` (:func:`tools.text.shorten`). A text that is cut ends
    with ``…`` (counted in ``limit``), after its last word's end if the cut came at a space.

    Args:
        text: The text.
        limit: The most characters the result has; at least 1.

    Raises:
        ValueError: ``limit`` is below 1.
    """
    short = shorten(text, limit, clusters=True)
    return text if short == text else short.removesuffix("…").rstrip() + "…"


def title_of(messages: Iterable[Any], limit: int = 60) -> str:
    """A thread's title: its first user message on one line, in ``limit`` characters at most.

    Characters are grapheme clusters, and the cut falls between two (:func:`shortened`);
    each keeps at most a few stacked accents (:func:`tools.text.limit_marks`), so a
    "Zalgo" message does not draw over the rows around its title.
    """
    for message in messages:
        if getattr(message, "type", None) == "human":
            return shortened(limit_marks(" ".join(str(message.text).split())), limit)
    return "(empty thread)"


def diagnostics(
    state: dict[str, Any], ttft: float | None, tokens: int, seconds: float
) -> dict[str, Any]:
    """The turn's diagnostics: concept, safety, retrieval, prompt size and speed.

    Args:
        state: The graph's final values.
        ttft: Seconds from sending to the first streamed token (None: none came).
        tokens: Streamed chunks (llama.cpp streams one token per chunk).
        seconds: Seconds from sending to the end of the turn.
    """
    retrieval = state.get("retrieval") or {}
    decode = seconds - ttft if ttft is not None else 0.0
    return {
        "concept": state.get("concept"),
        "safety": safety_verdict(state),
        "retrieval": {
            "status": retrieval.get("status"),
            "query": retrieval.get("query"),
            "collection": retrieval.get("collection"),
            "error": retrieval.get("error"),
        },
        "prompt_tokens": state.get("prompt_tokens", 0),
        "time_to_first_token_s": None if ttft is None else round(ttft, 3),
        "tokens": tokens,
        "tokens_per_s": round((tokens - 1) / decode, 2) if tokens > 1 and decode > 0 else None,
        "seconds": round(seconds, 3),
    }


def history_of(values: dict[str, Any]) -> list[dict[str, Any]]:
    """A thread's messages as chat rows: ``{"role": "user"|"assistant", "content": ...}``."""
    rows: list[dict[str, Any]] = []
    for message in values.get("messages") or []:
        role = {"human": "user", "ai": "assistant"}.get(message.type)
        if role:
            rows.append({"role": role, "content": message.text})
    return rows


class ChatService:
    """The web UI's back end: one graph and one memory for every browser session."""

    def __init__(
        self,
        settings: Settings,
        memory: OpenMemory,
        *,
        model: BaseChatModel | None = None,
        wait: float = 0.0,
        embeddings: Embeddings | None = None,
    ) -> None:
        """Build the graph on the open memory.

        Args:
            settings: The assistant's settings.
            memory: The open checkpointer, store and thread locks (``open_memory``).
            model: A chat model instead of the configured one (tests).
            wait: Seconds a turn waits for a busy thread before saying so.
            embeddings: The embedding model the uploads are embedded with (tests); None:
                all-MiniLM-L6-v2, as the graph's retrieval searches with.
        """
        from graph import build_graph

        self.settings = settings
        self.memory = memory
        self.wait = wait
        self.shared_documents = settings.chroma.shared
        """One collection for everyone (``chroma.shared``): the page says so."""
        self.graph: CompiledStateGraph[Any, Any, Any, Any] = build_graph(
            settings, checkpointer=memory.saver, store=memory.store, model=model
        )
        self._stops: dict[str, set[threading.Event]] = {}
        """The stop signals of the turns running now, by browser session."""
        self._stops_lock = threading.Lock()
        self._embeddings = embeddings
        self._documents: dict[str, DocumentStore] = {}
        self._documents_lock = threading.Lock()
        self._listed: dict[str, _Listed] = {}
        """What :meth:`threads` read of each thread, kept until it gets a new checkpoint."""

    # --- turns ---------------------------------------------------------------------------

    @contextmanager
    def stop_signal(self, session: str) -> Iterator[threading.Event]:
        """A new stop signal for one turn, which :meth:`stop` of its session sets.

        Each turn has its own, listed under its session while it runs and removed when it
        ends: a Stop reaches only the turns running in that session then, never a later
        turn, and one turn ending never clears another's Stop. A turn without a session id
        (``""``) is listed under no session, so no Stop of any session or of another
        request without one can end it (only closing its stream does).

        Args:
            session: The browser session's id (Gradio's ``session_hash``); ``""``: none.
        """
        signal = threading.Event()
        if not session:
            yield signal
            return
        with self._stops_lock:
            self._stops.setdefault(session, set()).add(signal)
        try:
            yield signal
        finally:
            with self._stops_lock:
                running = self._stops.get(session, set())
                running.discard(signal)
                if not running:
                    self._stops.pop(session, None)

    def stop(self, session: str) -> int:
        """Stop the session's running turns at their next token.

        Args:
            session: The browser session's id; ``""`` (no id) stops nothing, since it
                cannot tell one request without an id from another.

        Returns:
            How many running turns were told to stop (0: none ran in the session).
        """
        if not session:
            return 0
        with self._stops_lock:
            running = list(self._stops.get(session, ()))
        for signal in running:
            signal.set()
        return len(running)

    def turn(
        self, user: str, thread_id: str, text: str, controls: Controls, *, session: str = ""
    ) -> Generator[str | TurnResult, None, None]:
        """Check and start one turn, then yield each streamed token and the :class:`TurnResult`.

        The model starts before this returns, so the page shows the user's message while
        the prompt is read rather than before (the page's round trip for it, 0.05 to 0.2 s
        here, is off the time to first token). Close the result to stop a turn nobody
        reads any more. A stopped turn ends with ``stopped=True`` and the partial reply
        marked; the thread keeps it and the next turn works as usual.

        Raises:
            UiError: The message, the user or a control is invalid, the thread belongs to
                someone else or is busy, the model cannot be loaded; the text is the
                message the page shows. Bad input is refused here, the rest while
                iterating.
        """
        items = self._run_turn(user, thread_id, text, controls, session)
        next(items)  # the checks, and the model starts
        return cast(Generator[str | TurnResult, None, None], items)

    def check_user(self, name: str | None) -> str:
        """A valid user name, stripped, that is not the API's anonymous user.

        Raises:
            UiError: The name is invalid (:func:`check_user`), or it is
                ``api.anonymous_user``, whose threads and memories are every anonymous
                API caller's.
        """
        user = check_user(name)
        if user == self.settings.api.anonymous_user:
            raise UiError(f"The name {user!r} is reserved (the API's anonymous user).")
        return user

    def _run_turn(
        self, user: str, thread_id: str, text: str, controls: Controls, session: str
    ) -> Generator[str | TurnResult | None, None, None]:
        """:meth:`turn`'s generator: yields None once started, then what :meth:`turn` does."""
        user = self.check_user(user)
        text = check_message(text)
        context = make_context(user, controls, self.collection_of(user))
        self.check_owner(user, thread_id)
        with self.stop_signal(session) as stop:
            yield from self._stream(user, thread_id, text, context, stop)

    def _stream(
        self, user: str, thread_id: str, text: str, context: Context, stop: threading.Event
    ) -> Generator[str | TurnResult | None, None, None]:
        """:meth:`_run_turn` once checked: the turn under its own stop signal."""
        from tools.memory import MemoryBackendError, ThreadBusyError
        from tools.models import ModelLoadError

        store_failures: tuple[type[Exception], ...] = (MemoryBackendError, *STORE_FAILURES)
        started = time.perf_counter()
        ttft: float | None = None
        tokens = 0
        state: dict[str, Any] = {}
        try:
            # The owner is checked again once the thread's lock is held: another user's
            # turn could create this thread while this one waits for it.
            locks = CheckedLocks(self.memory.locks, lambda: self.check_owner(user, thread_id))
            with stream_turn(
                self.graph,
                locks,
                thread_id,
                text,
                context,
                owner=user,
                machine_user=self.default_owner,
                wait=self.wait,
                stop=stop,
            ) as stream:
                yield None
                for kind, value in stream:
                    if kind == "token":
                        if not value:
                            continue
                        if ttft is None:
                            ttft = time.perf_counter() - started
                        tokens += 1
                        yield str(value)
                    else:
                        state = value
        except GenerationStopped as exc:
            seconds = time.perf_counter() - started
            yield TurnResult(
                reply=f"{exc.partial} {STOPPED_MARK}".strip(),
                stopped=True,
                diagnostics=diagnostics({}, ttft, tokens, seconds),
            )
            return
        except ThreadBusyError:
            raise UiError(
                "This thread is busy: another tab or process is answering in it. Try again "
                "in a moment."
            ) from None
        except NotYourThreadError:
            raise UiError("No such thread for this user.") from None
        except MessageTooLongError as exc:
            raise UiError(f"The message is too long: {exc}") from None
        except InvalidMessageError as exc:
            raise UiError(str(exc)) from None
        except ModelLoadError as exc:
            raise UiError(f"The model cannot be loaded: {exc}") from None
        except store_failures as exc:
            log.warning("memory store failed: %s", exc)
            raise UiError(f"The memory store is unavailable: {exc}") from None
        seconds = time.perf_counter() - started
        messages = state.get("messages") or []
        safety = state.get("safety") or {}
        return_reply = messages[-1].text if messages else ""
        yield TurnResult(
            reply=return_reply,
            withdrawn=bool(safety.get("withdrawn")),
            sources=list(state.get("sources") or []),
            diagnostics=diagnostics(state, ttft, tokens, seconds),
        )

    # --- threads -------------------------------------------------------------------------

    def _saver(self) -> Any:
        if self.memory.saver is None:
            raise UiError(NO_THREADS)
        return self.memory.saver

    @property
    def keeps_threads(self) -> bool:
        """Whether threads are kept (``memory.backend`` is not ``none``)."""
        return self.memory.saver is not None

    @property
    def keeps_memories(self) -> bool:
        """Whether long-term memory keeps anything about the users."""
        return self.memory.store is not None

    @property
    def default_owner(self) -> str:
        """Who owns threads that name no owner: the machine's user (``long_term.user_id``).

        Threads written before checkpoints recorded their owner (and runs that name none)
        are the local user's, as for every front end (:func:`apps.turns.recorded_owner`).
        """
        return self.settings.long_term.user_id

    def owner_of(self, thread_id: str) -> str | None:
        """Whose thread this is (from its newest checkpoint); None when it does not exist.

        Raises:
            UiError: The id is not a thread id (:func:`check_thread`), no threads are kept,
                or the store failed.
        """
        return self._owner(check_thread(thread_id))

    def _owner(self, thread_id: str) -> str | None:
        """:meth:`owner_of` for any id: a delete may name a thread from before the rule."""
        saver = self._saver()
        with store_errors():
            return thread_owner(saver, thread_id, self.default_owner)

    def check_owner(self, user: str, thread_id: str) -> None:
        """Refuse a thread that exists and belongs to someone else.

        Raises:
            UiError: It is another user's thread, or not a thread id (:func:`check_thread`).
        """
        check_thread(thread_id)
        if self.memory.saver is None:
            return
        owner = self.owner_of(thread_id)
        if owner is not None and owner != user:
            raise UiError("No such thread for this user.")

    def threads(self, user: str) -> list[ThreadSummary]:
        """The user's threads, newest first, titled by their first message.

        One query lists every thread with a mark of its newest checkpoint; only a thread
        whose mark changed since the last listing (a new turn, or one not seen yet) is
        read, once, for its owner, title and time. The page lists after every turn, and
        reading every checkpoint of the user each time grew with all they ever said.

        Raises:
            UiError: The user name is invalid or reserved, or the store failed.
        """
        from tools.memory import list_threads

        user = self.check_user(user)
        saver = self._saver()
        listed: dict[str, _Listed] = {}
        with store_errors():
            for info in list_threads(saver):
                mark = (info.checkpoints, info.newest)
                known = self._listed.get(info.thread_id)
                if known is None or known.mark != mark or not info.newest:
                    known = self._read_listed(saver, info.thread_id, mark)
                if known is not None:
                    listed[info.thread_id] = known
        # Replaced whole (threads deleted since drop out); a listing running at the same
        # time in another session writes what it read too: either is right until the
        # next checkpoint.
        self._listed = listed
        # Owned by its newest checkpoint, as everywhere else: a thread another user has
        # written to since is theirs (it would only answer "No such thread").
        summaries = [
            ThreadSummary(thread_id, known.title, known.updated)
            for thread_id, known in listed.items()
            if known.owner == user
        ]
        return sorted(summaries, key=lambda s: s.updated, reverse=True)

    def _read_listed(self, saver: Saver, thread_id: str, mark: tuple[int, str]) -> _Listed | None:
        """A thread's owner, title and time from its newest checkpoint; None if it is gone."""
        newest = saver.get_tuple({"configurable": {"thread_id": thread_id}})
        if newest is None:
            return None
        values = newest.checkpoint.get("channel_values") or {}
        return _Listed(
            mark=mark,
            owner=recorded_owner(newest.metadata, self.default_owner),
            title=title_of(values.get("messages") or []),
            updated=str(newest.checkpoint.get("ts", "")),
        )

    def history(self, user: str, thread_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A thread's chat rows and its last values (sources, retrieval ...).

        Raises:
            UiError: It is another user's thread.
        """
        user = self.check_user(user)
        self.check_owner(user, thread_id)
        if self.memory.saver is None:
            return [], {}
        with store_errors():
            values = dict(self.graph.get_state(turn_config(thread_id, user)).values)
        return history_of(values), values

    def delete_thread(self, user: str, thread_id: str) -> bool:
        """Delete one of the user's threads (waits for a running turn on it).

        A thread that does not exist is already what a delete asks for: one deleted in
        another tab, or a new thread nothing was said in yet. Nothing happens and no
        error is raised.

        Returns:
            Whether there was a thread to delete.

        Raises:
            UiError: The user name is invalid, the thread is another user's, or it stayed
                busy.
        """
        from tools.memory import ThreadBusyError

        user = self.check_user(user)
        saver = self._saver()
        if not isinstance(thread_id, str):
            return False
        # Any id: one outside the rule is no thread to open or write, but one kept from
        # before the rule (or written by a notebook) can still be deleted.
        owner = self._owner(thread_id)
        if owner is None:
            return False
        if owner != user:
            raise UiError("No such thread for this user.")
        try:
            with self.memory.locks.hold(thread_id, self.settings.memory.busy_timeout):
                # Deleted meanwhile, or written by another user while this waited.
                owner = self._owner(thread_id)
                if owner is None:
                    return False
                if owner != user:
                    raise UiError("No such thread for this user.")
                with store_errors():
                    saver.delete_thread(thread_id)
        except ThreadBusyError:
            raise UiError("This thread is busy; try deleting it again in a moment.") from None
        return True

    # --- long-term memory ----------------------------------------------------------------

    def memories(self, user: str) -> list[Memory]:
        """What is kept about the user, newest first (empty when long-term memory is off)."""
        from tools.memory.long_term import list_memories

        if self.memory.store is None:
            return []
        user = self.check_user(user)
        with store_errors():
            return list_memories(self.memory.store, user, limit=200)

    def forget(self, user: str, keys: Iterable[str]) -> int:
        """Forget some of the user's memories; returns how many went (a fact's turn too)."""
        from tools.memory.long_term import forget

        if self.memory.store is None:
            raise UiError(NO_MEMORIES)
        user = self.check_user(user)
        with store_errors():
            return sum(len(forget(self.memory.store, user, key)) for key in keys)

    # --- documents -----------------------------------------------------------------------

    def collection_of(self, user: str) -> str:
        """The collection a user uploads into, lists, removes from and is answered from.

        The one rule of every front end (:func:`apps.documents.collection_of`): their own
        (:func:`user_collection`), or ``chroma.collection`` when ``chroma.shared`` or for
        the machine's user (``long_term.user_id``: the CLI's user, who also gets the
        threads that name no owner).

        Raises:
            UiError: The user name is invalid.
        """
        return collection_of(self.settings, self.check_user(user))

    def documents(self, user: str) -> DocumentStore:
        """The user's collection (opened once; the embeddings load lazily).

        Raises:
            UiError: The user name is invalid, or the store cannot be opened.
        """
        from tools.documents.store import DocumentStore, DocumentStoreError

        name = self.collection_of(user)
        with self._documents_lock:
            if name not in self._documents:
                try:
                    self._documents[name] = DocumentStore(
                        self.settings, name, embeddings=self._embeddings
                    )
                except DocumentStoreError as exc:
                    raise UiError(f"The document store is unavailable: {exc}") from None
            return self._documents[name]

    def upload_dir(self, user: str) -> Path:
        """Where the user's uploaded files are kept (the ingest records their path).

        One folder per collection, and in a shared collection one per user inside it: a
        file's path is its identity in the store, so two users' ``report.txt`` must not
        share one (the second upload replaced the first). The same user uploading a name
        again replaces their own file: that is how a document is updated.
        """
        folder = self.settings.data_dir / "uploads" / self.collection_of(user)
        if self.shared_documents:
            return folder / user_collection(self.check_user(user))
        return folder

    def ingest(
        self,
        user: str,
        files: Iterable[str | Path],
        on_progress: Callable[[IngestProgress], None] | None = None,
    ) -> dict[str, Any]:
        """Copy uploaded files into the user's upload folder and ingest them there.

        Returns:
            The ingest report as a dict (``added``, ``replaced``, ``unchanged``,
            ``skipped``, ``failed`` with reasons, ``flagged``, ``chunks_written``).

        Raises:
            UiError: No user or no file was given, or the store cannot be opened.
        """
        from tools.documents.ingest import IngestReport, ingest
        from tools.documents.store import DocumentStoreError

        user = self.check_user(user)
        store = self.documents(user)
        target = self.upload_dir(user)
        target.mkdir(parents=True, exist_ok=True)
        copies: list[Path] = []
        kept: dict[Path, Path] = {}  # a file of the same name uploaded before -> its backup
        unsupported: list[dict[str, str]] = []
        try:
            for given in files:
                source = Path(given)
                if source.suffix.lower() not in UPLOAD_KINDS:
                    unsupported.append({"path": source.name, "reason": unsupported_kind(source)})
                    continue
                # Gradio keeps uploads under a random folder with the original name; two
                # files of one name in a batch are two documents, not one lost.
                copy = target / batch_name(source.name, {c.name for c in copies})
                if copy.exists() and copy not in kept:
                    kept[copy] = copy.with_name(f".{copy.name}.{uuid.uuid4().hex}.previous")
                    os.replace(copy, kept[copy])
                try:
                    shutil.copyfile(source, copy)
                except OSError as exc:
                    why = exc.strerror or exc
                    raise UiError(f"Cannot read the upload {source.name}: {why}") from None
                copies.append(copy)
            if not copies and unsupported:
                nothing = IngestReport(collection=self.collection_of(user)).to_dict()
                return {**nothing, "skipped": unsupported, "files_seen": len(unsupported)}
            if not copies:
                raise UiError("Choose one or more files to upload.")
            try:
                report = ingest(store, copies, on_progress=on_progress, added_by=user)
            except DocumentStoreError as exc:
                raise UiError(f"The document store is unavailable: {exc}") from None
        except BaseException:
            _settle(copies, kept, rejected=set(copies), held=_held(store))
            raise
        result = report.to_dict()
        result["skipped"] = [*unsupported, *result.get("skipped", [])]
        result["files_seen"] = result.get("files_seen", 0) + len(unsupported)
        rejected = {Path(p["path"]) for kind in ("skipped", "failed") for p in result.get(kind, [])}
        _settle(copies, kept, rejected, _held(store))
        return result

    def added_by(self, info: SourceInfo) -> str:
        """Who added a stored file: the user the ingest recorded, else the machine's user.

        A file without one was added by ``assistant ingest`` (the operator, who is the
        machine's user, ``long_term.user_id``) or uploaded before uploads recorded it.
        """
        return info.added_by or self.default_owner

    def may_remove(self, user: str, info: SourceInfo) -> bool:
        """Whether ``user`` may remove a file of their collection.

        Their own collection is theirs alone; in the shared one (``chroma.shared``) each
        file is only its adder's (:meth:`added_by`), as a thread is only its owner's.
        """
        return not self.shared_documents or self.added_by(info) == user

    def document_list(self, user: str) -> list[dict[str, Any]]:
        """The files in the user's collection (``source``, ``name``, ``chunks``, ...).

        Each also has ``key`` (:func:`document_key`), what the page sends to the browser
        instead of ``source``, the file's path on the server; ``added_by``
        (:meth:`added_by`), which tells two users' ``report.md`` apart in a shared
        collection; and ``removable`` (:meth:`may_remove`).

        Raises:
            UiError: The user name is invalid, or the store cannot be read.
        """
        from tools.documents.store import DocumentStoreError

        user = self.check_user(user)
        try:
            sources = self.documents(user).sources()
        except DocumentStoreError as exc:
            raise UiError(f"The document store is unavailable: {exc}") from None
        return [
            {
                **info.to_dict(),
                "added_by": self.added_by(info),
                "removable": self.may_remove(user, info),
                "key": document_key(info.source),
            }
            for info in sources
        ]

    def remove_listed(self, user: str, key: str) -> tuple[str, int]:
        """Remove the file the page listed under ``key`` (:meth:`document_list`).

        Returns:
            The file's name and the chunks removed.

        Raises:
            UiError: No file of the user's collection has that key (removed meanwhile, or
                another user's), another user added it to the shared collection, or the
                store cannot be read or written.
        """
        for info in self.document_list(user):
            if info["key"] == key:
                return str(info["name"]), self.remove_document(user, str(info["source"]))
        raise UiError("That file is not in your collection (any more).")

    def remove_document(self, user: str, source: str) -> int:
        """Remove a file from the user's collection; returns the chunks removed.

        The uploaded copy goes too (a file ingested from elsewhere, e.g. by ``assistant
        ingest`` into the shared collection, stays where it is). In the shared collection
        only the user who added the file may remove it (:meth:`may_remove`).

        Args:
            user: Who removes it.
            source: The stored path, a path to it, or a file name only one stored file has.

        Raises:
            UiError: The store cannot be read or written, the file is not in the user's
                collection, or another user added it to the shared one.
        """
        from tools.documents.store import DocumentStoreError

        user = self.check_user(user)
        store = self.documents(user)
        try:
            resolved = store.resolve_source(source)
            info = store.source_info(resolved) if resolved is not None else None
            if info is not None and not self.may_remove(user, info):
                raise UiError(
                    f"{info.name} was added by {self.added_by(info)}: only they can remove "
                    "it from the shared files."
                )
            removed = store.remove(resolved) if resolved is not None else 0
        except DocumentStoreError as exc:
            raise UiError(str(exc)) from None
        if not removed or resolved is None:
            raise UiError(f"Not in your collection: {Path(source).name}")
        copy = Path(resolved).resolve()
        uploads = (self.settings.data_dir / "uploads" / self.collection_of(user)).resolve()
        if copy.is_relative_to(uploads):  # an upload (its adder's: checked above)
            copy.unlink(missing_ok=True)
        return removed


def unsupported_kind(path: Path) -> str:
    """Why an upload of another type than :data:`UPLOAD_KINDS` was skipped."""
    # The words of the ingest's folder walk, and what to upload instead.
    what = f"unsupported type ({path.suffix})" if path.suffix else "no extension"
    return f"{what}: upload PDF, Markdown, text or HTML"


def batch_name(name: str, taken: set[str]) -> str:
    """The name a file of an upload batch is kept under: its own, unless taken in the batch.

    Two files of one name in one upload (from two folders) must not overwrite each other:
    the second is kept as ``report (2).md``, the third ``report (3).md`` and so on, each a
    document of its own. A name uploaded again in a later batch still replaces the earlier
    file (that is how a document is updated).

    Args:
        name: The uploaded file's name.
        taken: The names already given to files of this batch.
    """
    if name not in taken:
        return name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 2
    while f"{stem} ({number}){suffix}" in taken:
        number += 1
    return f"{stem} ({number}){suffix}"


def _held(store: DocumentStore) -> set[Path]:
    """The files the store holds passages of (resolved paths); empty if it cannot say."""
    from tools.documents.store import DocumentStoreError

    try:
        return {Path(info.source).resolve() for info in store.sources()}
    except DocumentStoreError:
        return set()


def _settle(
    copies: list[Path], kept: dict[Path, Path], rejected: set[Path], held: set[Path]
) -> None:
    """Leave on disk exactly the uploads the store holds, each in the version it holds.

    A copy the store does not hold goes (it could never be listed or removed). A rejected
    copy of a name the store still holds from before gets its earlier version back; an
    accepted one replaces it.
    """
    for copy in copies:
        if copy.resolve() not in held:
            copy.unlink(missing_ok=True)
    for copy, backup in kept.items():
        if copy.resolve() in held and (copy in rejected or not copy.exists()):
            os.replace(backup, copy)
        else:
            backup.unlink(missing_ok=True)


def document_key(source: str) -> str:
    """The page's handle of a stored file: 16 hex digits of the SHA-256 of its path.

    The browser gets this, not the path: where files lie on the server stays there.
    """
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]


MARKDOWN_SIGNS = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~&])")


def as_text(text: str) -> str:
    """Text that Markdown shows as it is, on one line (the page renders titles as Markdown).

    A file name or a heading is the user's: ``*draft*.md`` is not italics, a heading
    ``[site](http://...)`` is not a link that leaves the machine, ``a<b>.md`` keeps its
    ``<b>``.
    """
    return MARKDOWN_SIGNS.sub(r"\\\1", " ".join(text.split()))


def code_span(text: str) -> str:
    """``text`` as a Markdown code span on one line, shown exactly as it is.

    The span is fenced by one backtick more than the longest run inside it (CommonMark's
    rule), so a file name holding backticks cannot close it early and turn the rest into
    links, emphasis or HTML; a space pads a text that starts or ends with a backtick.
    """
    flat = " ".join(text.split())
    runs = [len(run) for run in re.findall(r"`+", flat)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def ingest_summary(report: dict[str, Any]) -> str:
    """The ingest report as Markdown: the counts, then each skipped, failed, flagged file.

    File names are code spans (:func:`code_span`) and reasons plain text (:func:`as_text`):
    both are the user's or a library's words, never markup of the page.
    """
    added = report.get("added", [])
    replaced = report.get("replaced", [])
    lines = [
        f"**{len(added)} added** ({sum(f['chunks'] for f in added)} chunks), "
        f"{len(replaced)} replaced, {len(report.get('unchanged', []))} unchanged, "
        f"{len(report.get('skipped', []))} skipped, {len(report.get('failed', []))} failed"
    ]
    for kind in ("skipped", "failed"):
        for problem in report.get(kind, []):
            name, reason = code_span(Path(problem["path"]).name), as_text(str(problem["reason"]))
            lines.append(f"- {kind}: {name}: {reason}")
    for flagged in report.get("flagged", []):
        lines.append(
            f"- flagged: {code_span(Path(flagged['path']).name)}: {flagged['chunks']} "
            "passage(s) give orders to the assistant; it does not follow them"
        )
    return "\n".join(lines)


def safety_levels() -> tuple[str, ...]:
    """The safety levels the page offers."""
    return tuple(SAFETY_LEVELS)
