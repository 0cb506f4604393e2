"""The graph state: what a turn reads and writes, and what a thread keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph import add_messages


@dataclass(kw_only=True)
class InputState:
    """What a caller sends: ``{"messages": [...]}``, usually one new user message."""

    messages: Annotated[Sequence[AnyMessage], add_messages] = field(default_factory=list)
    """The conversation; new messages are appended (or replace one with the same id)."""


@dataclass(kw_only=True)
class State(InputState):
    """Everything a thread keeps between turns."""

    concept: str | None = None
    """Specialised prompt chosen for this turn by alias detection, or None."""

    safety: dict[str, Any] = field(default_factory=dict)
    """Verdict for this turn: ``allowed``, ``level``, ``reason``, ``category``, ``matches``,
    and ``masked`` (words masked in the reply)."""

    summary: str = ""
    """Running summary of the turns that left the prompt window ("" until the first)."""

    sources: list[dict[str, Any]] = field(default_factory=list)
    """Passages of the user's documents this turn's answer may use, best first: ``source``,
    ``name``, ``page``, ``section``, ``score``, ``text`` (empty when nothing matched)."""

    retrieval: dict[str, Any] = field(default_factory=dict)
    """How retrieval went this turn: ``status`` (off, empty, found, none_relevant, error,
    skipped: a thanks or a greeting, not searched),
    ``query`` (what was searched, after rewriting a follow-up), ``collection``, ``error``."""

    prompt_tokens: int = 0
    """Tokens in the prompt sent to the model this turn (0 when it was not called)."""

    summarised_through: str | None = None
    """Id of the last message folded into ``summary``; later messages are live history."""

    profile: str | None = None
    """What the user told the assistant about themselves, as loaded from long-term memory:
    the system prompt shows it whole unless the prompt budget is too small, when only that
    prompt's copy loses its oldest lines (``generate``, with a warning); this stays whole,
    for the next turns. Loaded at the thread's first turn, again after each summary (so
    the prompt prefix stays the same in between) and whenever another user takes a turn
    in the thread; None until loaded."""

    profile_user: str | None = None
    """Whose facts ``profile`` holds: in a thread several people write to (a group chat,
    a shared API thread), each turn's prompt must carry its own sender's facts only."""

    memories: list[dict[str, Any]] = field(default_factory=list)
    """Past turns of this user recalled for this turn by meaning, best first: ``key``,
    ``text`` (what the user said), ``reply``, ``thread_id``, ``created``, ``score``."""
