"""Turning a thread into a prompt that fits the model: turns, trimming, token budget.

Pure functions: the nodes call them, the unit tests call them without a graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from graph.errors import MessageTooLongError
from graph.messages import is_blocked
from graph.settings import REPO_ROOT

# Chat templates wrap every message in a few tokens (ChatML: "<|im_start|>role\n",
# "<|im_end|>\n"); counted per message so the budget is never exceeded.
MESSAGE_OVERHEAD = 6
REPLY_PRIMER = 4  # "<|im_start|>assistant\n" that opens the reply

Counter = Callable[[str], int]


def caching_counter(count: Counter, maxsize: int = 4096) -> Counter:
    """Wrap a token counter so each distinct text is tokenised once, not once per turn."""
    return lru_cache(maxsize=maxsize)(count)


def message_tokens(message: BaseMessage, count: Counter) -> int:
    """Tokens one message takes in the prompt, template overhead included."""
    return count(message.text) + MESSAGE_OVERHEAD


@dataclass(frozen=True)
class Turn:
    """One exchange: a user message and the reply (or replies) to it."""

    messages: tuple[BaseMessage, ...]

    def tokens(self, count: Counter) -> int:
        """Tokens the whole turn takes in a prompt."""
        return sum(message_tokens(m, count) for m in self.messages)

    @property
    def last_id(self) -> str | None:
        """Id of the turn's last message (the summary cursor points at it)."""
        return self.messages[-1].id


def complete_turns(messages: Sequence[BaseMessage]) -> list[Turn]:
    """Group messages into complete turns the model may see.

    Blocked turns (the withheld message and its refusal) are left out, and so is a user
    message that never got a reply: half a turn would confuse the model.
    """
    turns: list[Turn] = []
    current: list[BaseMessage] = []
    for message in messages:
        if is_blocked(message) or message.type == "system":
            continue
        if message.type == "human":
            current = [message]
        elif message.type == "ai" and current:
            current.append(message)
            if len(current) == 2:
                turns.append(Turn(tuple(current)))
    return turns


def unsummarised(
    messages: Sequence[BaseMessage], summarised_through: str | None
) -> list[BaseMessage]:
    """Messages after the summary cursor (all of them when nothing is summarised yet)."""
    if summarised_through is None:
        return list(messages)
    for index, message in enumerate(messages):
        if message.id == summarised_through:
            return list(messages[index + 1 :])
    # The cursor's message is gone (e.g. removed by the user): keep everything live
    # rather than silently dropping history.
    return list(messages)


@dataclass(frozen=True)
class Prompt:
    """The messages sent to the model and what it took to build them."""

    messages: list[BaseMessage]
    tokens: int
    history_turns: int
    dropped_turns: int


@dataclass(frozen=True)
class MemoryHeadings:
    """The headings memory goes under in a prompt (``prompts/memory.yaml``)."""

    profile: str
    summary: str
    recalled: str


@lru_cache(maxsize=8)
def memory_headings(path: Path = REPO_ROOT / "prompts" / "memory.yaml") -> MemoryHeadings:
    """Read the memory headings from a prompts file (once per path).

    Raises:
        OSError: The file cannot be read.
        ValueError: A heading is missing or empty.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    values = {
        k: " ".join(str(data.get(k) or "").split()) for k in ("profile", "summary", "recalled")
    }
    empty = [k for k, v in values.items() if not v]
    if empty:
        raise ValueError(f"{path}: missing heading(s): {', '.join(empty)}")
    return MemoryHeadings(**values)


def system_text(
    base: str, summary: str, profile: str = "", headings: MemoryHeadings | None = None
) -> str:
    """The system prompt: the base prompt, the user's facts, the running summary.

    ``profile`` (lines from long-term memory) and ``summary`` go under their headings,
    and only when they are not empty.
    """
    heads = headings or memory_headings()
    parts = [base]
    if profile:
        parts.append(f"{heads.profile}\n{profile}")
    if summary:
        parts.append(f"{heads.summary}\n{summary}")
    return "\n\n".join(parts)


def build_prompt(
    *,
    system: str,
    history: Sequence[Turn],
    new_message: HumanMessage,
    count: Counter,
    max_prompt_tokens: int,
    max_history_turns: int,
    concept_prompt: str | None = None,
    extra: Sequence[BaseMessage] = (),
) -> Prompt:
    """Assemble the prompt, keeping as many recent turns as the caps allow.

    The system prompt, the concept prompt, ``extra`` (messages that go right before the
    new one: the quoted document passages) and the new message are never cut; older
    turns go first (whole turns, never half of one).

    The concept prompt is a second system message right before the new user message,
    after the history. It adds to the base prompt, and it keeps the prefix (system prompt
    and history) identical from turn to turn, so llama.cpp can reuse its KV cache.

    Raises:
        MessageTooLongError: The fixed parts alone exceed ``max_prompt_tokens``.
    """
    head = [SystemMessage(system)]
    tail: list[BaseMessage] = []
    if concept_prompt:
        tail.append(SystemMessage(concept_prompt))
    tail.extend(extra)
    tail.append(new_message)
    fixed = sum(message_tokens(m, count) for m in (*head, *tail)) + REPLY_PRIMER
    if fixed > max_prompt_tokens:
        raise MessageTooLongError(
            f"the message needs {fixed} prompt tokens with the system prompt; the budget "
            f"(context.max_prompt_tokens) is {max_prompt_tokens}. Shorten the message."
        )
    kept: list[Turn] = []
    used = fixed
    for turn in reversed(history[-max_history_turns:] if max_history_turns else []):
        cost = turn.tokens(count)
        if used + cost > max_prompt_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    body = [m for turn in kept for m in turn.messages]
    return Prompt(
        messages=[*head, *body, *tail],
        tokens=used,
        history_turns=len(kept),
        dropped_turns=len(history) - len(kept),
    )
