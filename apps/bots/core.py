"""What every chat bot does, whatever the platform: commands, turns, busy replies.

A chat (a Telegram chat, a Slack channel or Slack thread) is one assistant thread, with a
fixed id such as ``telegram:<chat_id>``; each sender is one user (``telegram:<user_id>``),
whose long-term memories are their own. ``reset`` deletes the chat's thread from the
checkpointer (the conversation starts again under the same id; nothing of it is kept);
what the assistant remembers about each user long-term stays. A chat's safety level is
kept in the long-term store (namespace ``("bot_chats", <chat>)``) when there is one, so it
outlives a restart, else for the life of the process.

Threads and documents are the room's, not the sender's: the room (the Telegram chat, the
Slack channel or DM) owns its thread and the thread of every forum topic or Slack thread
in it, by the one owner rule of every front end (:func:`apps.turns.recorded_owner`), as
it owns their documents. A thread id that someone else already owns (a CLI or API user
who named their thread ``telegram:<chat_id>``, or a notebook's ownerless thread, the
machine user's) is never continued or reset from the chat: the reply says so (see
:data:`NOT_OURS`) and the operator decides what to do with it.

Documents: a turn searches the collection
:func:`apps.documents.collection_of` gives the room (the Telegram chat, the Slack
channel or DM, whatever forum topic or Slack thread the message is in):
``chroma.collection`` when ``chroma.shared``, else a collection of the room's own, which
only the operator fills (``assistant ingest --collection``). In a group every member
reads the reply, so one member's own documents must never be quoted in it.

Long-term memory follows the same rule: in a private chat the turn recalls what is kept
about its user; in a group, channel or shared thread it recalls nothing (``recall`` off),
because every member reads the reply and one member's private facts must not reach it.
What the sender says in a group is still kept as theirs (it was said in front of the
group anyway), to be recalled in their own private chat only.

Who may change a chat: in a private chat the user; in a group, channel or shared thread
only the people the platform's adapter vouches for (a :class:`ChatGuard`: Telegram asks
the Bot API whether the sender administers the chat, Slack checks its list and the
workspace's admins). The commands that change the chat for everyone are guarded:
``safety LEVEL`` and ``reset``; reading the level (``help``, ``safety`` alone) is open to all.

Turns are plain blocking calls (:func:`apps.turns.run_turn`); the adapters run them in
worker threads. One model answers one turn at a time: a turn waits up to ``busy_wait``
seconds for the model and for its chat's previous turn, then the user is told to try again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps.documents import collection_of
from apps.turns import NotYourThreadError, check_thread, run_turn
from graph.context import Context
from graph.errors import InvalidMessageError, MessageTooLongError
from graph.settings import SAFETY_LEVELS, Settings
from tools.text import is_blank

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langgraph.graph.state import CompiledStateGraph

    from tools.memory import OpenMemory

log = logging.getLogger("assistant.bots")


class BotConfigError(Exception):
    """A token or secret the bot needs is not configured; the message names the setting."""


PREFS_NAMESPACE = "bot_chats"
"""First label of the store namespace that keeps each chat's settings."""

BUSY_MODEL = "I'm busy answering other messages right now. Please try again in a minute."
BUSY_THREAD = "I'm still answering your previous message here. Please try again when it's done."
FAILED = "Sorry, something went wrong while answering. Please try again."
EMPTY = "Sorry, I have no answer to that."
NOT_TEXT = (
    "Sorry, I can only read text messages: pictures, voice notes, stickers and files "
    "don't reach me. Please send your question as text."
)
"""The reply to a private message that is not text (it would otherwise get silence)."""
NOT_OURS = (
    "Sorry, I can't use this chat's conversation: its history ({thread}) is kept for "
    "someone else on this assistant, so I neither continue nor reset it here. Please tell "
    "whoever runs this bot."
)
"""The reply when the chat's thread id is owned by another user of the assistant. It names
the thread (the operator needs it) but never its owner, as every front end does."""

NOT_CHECKED = (
    "Sorry, I could not check whether you may change this chat's settings. Please try again."
)
CANNOT_CHECK = (
    "Sorry, I cannot check whether you may change this chat's settings ({reason}); trying "
    "again will not help. Please tell whoever runs this bot."
)

HELP = """I'm a local assistant. Send me a message and I'll answer.
Commands:
  {p}reset: start this conversation again (its history is deleted)
  {p}safety LEVEL: set this chat's safety level ({levels}; now {level})
  {p}help: this text"""


class CheckFailed(Exception):
    """The platform did not say whether the sender may change a shared chat.

    Attributes:
        reason: What went wrong, short enough for the reply ("Slack answered user_not_found").
        transient: Whether asking again may succeed (the network, a rate limit, a server
            error); the reply then says to try again, else that trying again will not help.
    """

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class ChatGuard:
    """Who may change a shared chat (a group, a channel, a thread in one) for everyone.

    A private chat has no guard: its user may change it.
    """

    allowed: Callable[[], bool]
    """Whether the sender may; asked only when they try (it may call the platform's API,
    blocking). :class:`CheckFailed` (or an ``OSError``, a timeout, which may pass) means
    "could not check": the change is refused, saying whether trying again can help."""
    who: str | Callable[[], str]
    """Who may, for the reply to anybody else ("this group's administrators"). A callable
    is read after :attr:`allowed` answered, so it can say what the check found out (Slack
    without the users:read scope cannot see the workspace's admins)."""


class BotCore:
    """One graph, one memory and one model gate shared by every chat of a bot."""

    def __init__(
        self,
        settings: Settings,
        memory: OpenMemory,
        *,
        busy_wait: float,
        model: BaseChatModel | None = None,
        slots: int = 1,
    ) -> None:
        """Build the graph on the open memory.

        Args:
            settings: The assistant's settings.
            memory: The open checkpointer, store and thread locks (``open_memory``).
            busy_wait: Seconds a turn waits for the model, and for its chat's previous
                turn, before the user gets a "busy" reply.
            model: A chat model instead of the configured one (tests).
            slots: Turns that may run at once (the model serves one at a time anyway;
                more slots only let turns queue inside the model instead of here).
        """
        from graph import build_graph

        self.settings = settings
        self.memory = memory
        self.busy_wait = busy_wait
        self.graph: CompiledStateGraph[Any, Any, Any, Any] = build_graph(
            settings, checkpointer=memory.saver, store=memory.store, model=model
        )
        self._gate = threading.BoundedSemaphore(slots)
        self._prefs: dict[str, str] = {}  # chat -> safety level, when there is no store
        self._prefs_lock = threading.Lock()

    # --- the chat's settings ---------------------------------------------------------------

    def safety_level(self, chat: str) -> str:
        """The chat's safety level (``safety.sensitivity_level`` until someone sets one)."""
        level: str | None
        if self.memory.store is not None:
            item = self.memory.store.get((PREFS_NAMESPACE, chat), "safety")
            level = item.value.get("level") if item is not None else None
        else:
            with self._prefs_lock:
                level = self._prefs.get(chat)
        return level if level in SAFETY_LEVELS else self.settings.safety.sensitivity_level

    def _set_safety_level(self, chat: str, level: str) -> None:
        if self.memory.store is not None:
            self.memory.store.put((PREFS_NAMESPACE, chat), "safety", {"level": level})
        else:
            with self._prefs_lock:
                self._prefs[chat] = level

    # --- messages ----------------------------------------------------------------------------

    def handle(
        self,
        chat: str,
        user: str,
        text: str,
        prefix: str = "/",
        guard: ChatGuard | None = None,
        *,
        room: str | None = None,
    ) -> str:
        """Answer one message: a command (starting with ``prefix``) or a turn.

        Never raises for anything a user can cause: a bad command, a busy model or thread,
        a message that is too long, or a failing model all give a short reply.

        Args:
            chat: The chat's thread id (``telegram:<chat_id>``, ``slack:<team>:<channel>``).
            user: The sender (``telegram:<user_id>``, ``slack:<team>:<user>``).
            text: The message as the user wrote it.
            prefix: What starts a command on this platform (``/`` on Telegram).
            guard: Who may change a shared chat (``safety LEVEL``, ``reset``); None = a
                private chat, whose user may.
            room: Who owns the chat's thread and whose documents the turn searches: the
                chat without its forum topic or Slack thread (``telegram:<chat_id>``,
                ``slack:<team>:<channel>``); None = ``chat``.

        Returns:
            The reply, possibly longer than the platform allows (split it to send).
        """
        text = text.strip()
        if is_blank(text):
            return self.help(chat, prefix)
        if text.startswith(prefix):
            name, _, arg = text[len(prefix) :].partition(" ")
            # Telegram writes commands in groups as /reset@SomeBot.
            name = name.split("@", 1)[0].lower()
            if name in ("help", "start"):
                return self.help(chat, prefix)
            if name == "reset":
                refused = self._refusal(chat, guard, "start this conversation again")
                return refused or self.reset(chat, room=room)
            if name == "safety":
                if arg.strip().lower() not in SAFETY_LEVELS:  # reading it, or a bad level
                    return self.set_safety(chat, arg, prefix)
                level = self.safety_level(chat)
                refused = self._refusal(chat, guard, f"change the safety level (it stays {level})")
                return refused or self.set_safety(chat, arg, prefix)
            if name.isidentifier():  # "/usr/bin is ..." is a message, not a command
                return f"Unknown command {prefix}{name}.\n\n{self.help(chat, prefix)}"
        # No guard: a private chat, the only place a member's own memories may be recalled.
        return self.turn(chat, user, text, room=room, private=guard is None)

    def _refusal(self, chat: str, guard: ChatGuard | None, change: str) -> str | None:
        """Why the sender may not ``change`` the chat; None when they may."""
        if guard is None:
            return None
        # Whatever goes wrong, the change is refused: never guess "yes".
        try:
            if guard.allowed():
                return None
        except CheckFailed as exc:  # the platform's answer, not a bug: no traceback
            log.warning("could not check who may change %s: %s", chat, exc.reason)
            return NOT_CHECKED if exc.transient else CANNOT_CHECK.format(reason=exc.reason)
        except OSError as exc:  # the network or a timeout (TimeoutError is one): may pass
            log.warning("could not check who may change %s: %r", chat, exc)
            return NOT_CHECKED
        except Exception:  # a bug in the adapter: asking again would fail the same way
            log.exception("could not check who may change %s", chat)
            return CANNOT_CHECK.format(reason="an unexpected error, logged")
        who = guard.who() if callable(guard.who) else guard.who
        return f"Sorry, only {who} can {change} in this chat."

    def help(self, chat: str, prefix: str = "/") -> str:
        """The help text, with the chat's current safety level."""
        return HELP.format(p=prefix, levels=", ".join(SAFETY_LEVELS), level=self.safety_level(chat))

    def set_safety(self, chat: str, level: str, prefix: str = "/") -> str:
        """Set the chat's safety level; an unknown level gets a reply naming the valid ones.

        Asks no permission: :meth:`handle` checks the sender before it calls this.
        """
        level = level.strip().lower()
        if level not in SAFETY_LEVELS:
            shown = f"{level!r} is not a safety level" if level else "Name a safety level"
            return (
                f"{shown}: use {prefix}safety followed by one of {', '.join(SAFETY_LEVELS)} "
                f"(now {self.safety_level(chat)})."
            )
        self._set_safety_level(chat, level)
        return f"Safety level for this chat: {level}."

    def reset(self, chat: str, *, room: str | None = None) -> str:
        """Delete the chat's thread, so the conversation starts again.

        Asks no permission of the sender: :meth:`handle` checks them before it calls this.
        The thread must be the room's (:func:`apps.turns.check_thread`): another user's
        thread under the same id is left alone, with :data:`NOT_OURS` as the reply.

        Args:
            chat: The chat's thread id.
            room: The room that owns it (see :meth:`handle`); None = ``chat``.
        """
        from tools.memory import MemoryBackendError, ThreadBusyError

        if self.memory.saver is None:
            return "Nothing to reset: I keep no conversation history (memory is off)."
        try:
            with self.memory.locks.hold(chat, self.busy_wait):
                # Under the thread's lock, as a turn checks it: no one takes it meanwhile.
                check_thread(self.memory.saver, chat, room or chat, self.settings.long_term.user_id)
                self.memory.saver.delete_thread(chat)
        except ThreadBusyError:
            return BUSY_THREAD
        except NotYourThreadError:
            return self._not_ours(chat)
        except MemoryBackendError:
            log.exception("reset of %s failed", chat)
            return FAILED
        return "Started over: this conversation's history is deleted."

    def turn(
        self, chat: str, user: str, text: str, *, room: str | None = None, private: bool = False
    ) -> str:
        """Run one turn on the chat's thread and return the reply (or why there is none).

        Args:
            chat: The chat's thread id.
            user: The sender (whose long-term memories).
            text: The message.
            room: The room: whose documents are searched, who owns the thread (see
                :meth:`handle`); None = ``chat``.
            private: The chat is the sender's private chat with the bot: their memories
                are recalled. False (a group, channel or shared thread, and the default):
                nothing is recalled, since every member reads the reply.
        """
        from tools.memory import MemoryBackendError, ThreadBusyError
        from tools.models import ModelLoadError

        context = Context.model_validate(
            {
                "user_id": user,
                # The room's documents, not the sender's: in a group every member reads
                # the reply, so one member's own documents must not be quoted to them.
                "collection": collection_of(self.settings, room or chat),
                "safety_level": self.safety_level(chat),
                # The same for memories: a group's reply recalls no member's private facts.
                **({} if private else {"recall": False}),
            }
        )
        try:
            with self._model_slot():
                # The reply goes out whole: no token is needed, none changes threads.
                state = run_turn(
                    self.graph,
                    self.memory.locks,
                    chat,
                    text,
                    context,
                    # The room owns its threads (each topic's too), as it owns their
                    # documents (collection_of above): every member writes to them.
                    owner=room or chat,
                    machine_user=self.settings.long_term.user_id,
                    wait=self.busy_wait,
                    on_token=lambda _token: None,
                )
        except _ModelBusy:
            return BUSY_MODEL
        except ThreadBusyError:
            return BUSY_THREAD
        except NotYourThreadError:
            return self._not_ours(chat)
        except MessageTooLongError as exc:
            return f"Your message is too long for me: {exc}"
        except InvalidMessageError as exc:
            return str(exc)
        except ModelLoadError:
            log.exception("the model cannot be loaded")
            return "Sorry, my model cannot be loaded right now."
        except MemoryBackendError:
            log.exception("the memory store failed")
            return FAILED
        except Exception:  # a bot must answer, never die on one message
            log.exception("turn on %s failed", chat)
            return FAILED
        messages = state.get("messages") or []
        if not messages:
            return FAILED
        # An empty reply would be sent as nothing at all: the user would hear silence.
        return str(messages[-1].text).strip() or EMPTY

    def _not_ours(self, chat: str) -> str:
        # The operator's side of the story: the chat's users only learn it is taken.
        log.warning(
            "thread %s belongs to another user of the assistant, so its chat cannot use it; "
            "its owner can delete it (assistant threads delete %s --user OWNER)",
            chat,
            chat,
        )
        return NOT_OURS.format(thread=chat)

    @contextmanager
    def _model_slot(self) -> Iterator[None]:
        if not self._gate.acquire(timeout=self.busy_wait):
            raise _ModelBusy
        try:
            yield
        finally:
            self._gate.release()


class SeenIds:
    """The ids of the last ``size`` deliveries, to answer a redelivered one only once.

    Telegram and Slack deliver again when they think a delivery failed (a slow or lost
    acknowledgement); the second copy carries the same ``update_id`` / ``event_id``.
    """

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._ids: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (among the last ``size`` keys)."""
        with self._lock:
            if key in self._ids:
                return False
            self._ids[key] = None
            if len(self._ids) > self.size:
                self._ids.popitem(last=False)
            return True


class _ModelBusy(Exception):
    """No model slot came free within ``busy_wait``."""
