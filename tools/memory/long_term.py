"""Long-term memory of one user: what they said about themselves, and their past turns.

Everything of a user lives under the namespace ``("memories", <user key>, <kind>)`` of the
LangGraph store, where the user key is a hash of the user id and the kind is ``facts``
or ``turns``. The hash is not for secrecy: RedisStore finds a namespace by a full-text
prefix query that folds case and splits at punctuation, so the raw ids "Ada" and "ada"
shared their memories there (measured); 32 hex digits make every user a distinct token
on every backend. Results are checked against the exact namespace anyway.

- facts: sentences in which the user states something about themselves, in their own
  words (:mod:`tools.memory.facts`); the newest fill the prompt's "profile";
- turns: each message with the reply it got, embedded by the message and found again by
  meaning ("what was my locker code?" finds "my locker code is 4817").
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from langgraph.store.base import BaseStore, Item, PutOp, SearchItem

from tools.memory.facts import self_statements
from tools.prompting import Counter
from tools.text import shorten

ROOT = "memories"
Kind = Literal["facts", "turns"]
KINDS: tuple[Kind, ...] = ("facts", "turns")
REPLY_CHARS = 600
"""How much of a reply is kept with its turn (the start says what it was about)."""


def user_key(user_id: str) -> str:
    """The namespace label of a user: 32 hex digits of SHA-256 of the id."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


def namespace(user_id: str, kind: Kind) -> tuple[str, str, str]:
    """Where one kind of a user's memories is kept."""
    return (ROOT, user_key(user_id), kind)


@dataclass(frozen=True)
class Memory:
    """One thing remembered about a user."""

    key: str
    kind: Kind
    text: str
    """A fact sentence, or the user's message of a past turn."""
    reply: str = ""
    """The reply the turn got (turns only, cut to ``REPLY_CHARS``)."""
    thread_id: str | None = None
    created: str = ""
    """When it was said, ISO 8601 in UTC."""
    score: float | None = None
    """Cosine similarity to the query, when found by a search."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (the state's ``memories``, ``assistant memory --json``)."""
        return asdict(self)


def _memory(item: Item | SearchItem, kind: Kind) -> Memory:
    value = item.value
    score = item.score if isinstance(item, SearchItem) else None
    return Memory(
        key=item.key,
        kind=kind,
        text=str(value.get("text", "")),
        reply=str(value.get("reply", "")),
        thread_id=value.get("thread_id"),
        created=str(value.get("created", "")),
        score=None if score is None else round(float(score), 4),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_key(kind: str, index: int) -> str:
    # Sortable by time and by position in the message, unique across processes.
    return f"{kind}-{time.time_ns():x}-{index:02d}-{uuid.uuid4().hex[:8]}"


def remember_turn(
    store: BaseStore,
    user_id: str,
    *,
    message: str,
    reply: str,
    thread_id: str | None,
    message_id: str | None,
    facts: bool = True,
    turns: bool = True,
) -> list[Memory]:
    """Keep one turn of a user: the facts stated in ``message``, and the turn itself.

    Two store calls at most; the turn is keyed by its message id, so keeping the same
    turn twice (a retried write) does not duplicate it.

    Returns:
        What was kept.
    """
    created = _now()
    kept: list[Memory] = []
    turn_key = f"turn-{message_id}" if message_id else _new_key("turn", 0)
    keep_turn = turns and bool(message.strip())
    if facts:
        ops: list[PutOp] = []
        for index, sentence in enumerate(dict.fromkeys(self_statements(message))):
            key = _new_key("fact", index)
            value = {"text": sentence, "thread_id": thread_id, "created": created}
            if keep_turn:
                value["turn"] = turn_key  # forgetting the fact forgets the turn too
            ops.append(PutOp(namespace(user_id, "facts"), key, value))
            kept.append(Memory(key, "facts", sentence, thread_id=thread_id, created=created))
        if ops:
            store.batch(ops)
    if keep_turn:
        # A separate call: InMemoryStore (langgraph 1.2) fails on two items with the same
        # text in one batch, and a one-sentence message is both a fact and the turn.
        key = turn_key
        reply = reply[:REPLY_CHARS]
        value = {"text": message, "reply": reply, "thread_id": thread_id, "created": created}
        store.put(namespace(user_id, "turns"), key, value)
        kept.append(Memory(key, "turns", message, reply, thread_id, created))
    return kept


def list_memories(
    store: BaseStore, user_id: str, kinds: Iterable[Kind] = KINDS, limit: int = 1000
) -> list[Memory]:
    """A user's memories of the given kinds, newest first."""
    found: list[Memory] = []
    for kind in kinds:
        ns = namespace(user_id, kind)
        items = store.search(ns, limit=limit)
        found += [_memory(i, kind) for i in items if tuple(i.namespace) == ns]
    return sorted(found, key=lambda m: (m.created, m.key), reverse=True)[:limit]


def search_memories(
    store: BaseStore,
    user_id: str,
    query: str,
    *,
    kinds: Iterable[Kind] = KINDS,
    limit: int = 10,
    min_score: float = 0.0,
    exclude: Sequence[str] = (),
) -> list[Memory]:
    """A user's memories most similar in meaning to ``query``, best first.

    Args:
        store: The store.
        user_id: Whose memories.
        query: The text to match (embedded with the store's index).
        kinds: Which kinds to search.
        limit: How many memories to return at most.
        min_score: Cosine similarity a memory needs.
        exclude: Keys to leave out (the turns still in the prompt, say).
    """
    found: list[Memory] = []
    for kind in kinds:
        ns = namespace(user_id, kind)
        items = store.search(ns, query=query, limit=limit + len(exclude))
        found += [
            _memory(i, kind)
            for i in items
            if tuple(i.namespace) == ns and i.key not in exclude and (i.score or 0.0) >= min_score
        ]
    return sorted(found, key=lambda m: m.score or 0.0, reverse=True)[:limit]


def has_memories(store: BaseStore, user_id: str, kind: Kind) -> bool:
    """True when the user has at least one memory of ``kind`` (no embedding needed)."""
    ns = namespace(user_id, kind)
    return any(tuple(i.namespace) == ns for i in store.search(ns, limit=1))


def _find(store: BaseStore, ns: tuple[str, str, str], key: str) -> Item | None:
    item = store.get(ns, key)
    if item is not None:
        return item
    # RedisStore (langgraph-checkpoint-redis 0.5.2) can miss a key by get() that its
    # search lists, so the listing decides too.
    listed = (i for i in store.search(ns, limit=10_000) if tuple(i.namespace) == ns)
    return next((i for i in listed if i.key == key), None)


def forget(store: BaseStore, user_id: str, key: str) -> list[str]:
    """Delete one memory by key.

    A fact goes with the turn that stated it: the turn's message holds the same sentence
    and would still be recalled ("My locker code is 4817." forgotten as a fact, then
    found again by meaning). Facts kept before they named their turn find it by their
    sentence among the same thread's turns.

    Returns:
        The keys deleted: ``key``, then the turn that stated it (for a fact); empty when
        the user has no memory with that key.
    """
    for kind in KINDS:
        ns = namespace(user_id, kind)
        item = _find(store, ns, key)
        if item is None:
            continue
        turns = _stating(store, user_id, item) if kind == "facts" else []
        store.batch(
            [PutOp(ns, key, None), *(PutOp(namespace(user_id, "turns"), k, None) for k in turns)]
        )
        return [key, *turns]
    return []


def _stating(store: BaseStore, user_id: str, fact: Item) -> list[str]:
    """Keys of the turn memories that stated ``fact``."""
    ns = namespace(user_id, "turns")
    linked = fact.value.get("turn")
    if linked:
        return [linked] if _find(store, ns, str(linked)) is not None else []
    sentence = " ".join(str(fact.value.get("text", "")).split())
    if not sentence:
        return []
    thread = fact.value.get("thread_id")
    return [
        i.key
        for i in store.search(ns, limit=10_000)
        if tuple(i.namespace) == ns
        and i.value.get("thread_id") == thread
        and sentence in " ".join(str(i.value.get("text", "")).split())
    ]


def clear(store: BaseStore, user_id: str) -> int:
    """Delete every memory of a user; returns how many there were."""
    removed = 0
    for kind in KINDS:
        ns = namespace(user_id, kind)
        while True:
            items = [i for i in store.search(ns, limit=500) if tuple(i.namespace) == ns]
            if not items:
                break
            store.batch([PutOp(ns, i.key, None) for i in items])
            removed += len(items)
    return removed


def profile(facts: Sequence[Memory], count: Counter, max_tokens: int) -> str:
    """The user's facts as prompt lines: the newest that fit ``max_tokens``, oldest first.

    Repeated sentences appear once (at their newest place).
    """
    seen: set[str] = set()
    lines: list[str] = []
    for fact in sorted(facts, key=lambda m: (m.created, m.key), reverse=True):
        text = " ".join(fact.text.split())
        if text.lower() not in seen:
            seen.add(text.lower())
            lines.append(f"- {text}")
    return fit_profile("\n".join(reversed(lines)), count, max_tokens)


def fit_profile(lines: str, count: Counter, max_tokens: int) -> str:
    """The newest of the profile's ``lines`` (oldest first, one a line) within ``max_tokens``.

    The facts give way oldest first, whole lines only: a line cut in half could say the
    opposite of what the user said ("I can't eat" without "peanuts"). A newer line
    corrects an older one, so an older line is never kept in place of a newer one.

    Args:
        lines: The profile as :func:`profile` writes it ("- I'm Priya." and more, a line each).
        count: The model's token counter.
        max_tokens: Tokens the lines may take (each line counts one more, its line break).

    Returns:
        The lines kept, oldest first ("" when not even the newest fits).
    """
    kept: list[str] = []
    used = 0
    for line in reversed([ln for ln in lines.splitlines() if ln.strip()]):
        cost = count(line) + 1
        if used + cost > max_tokens:
            break
        kept.append(line)
        used += cost
    return "\n".join(reversed(kept))


def recalled_lines(memories: Sequence[Memory], count: Counter, max_tokens: int) -> str:
    """Recalled turns as quoted prompt lines, best first, within ``max_tokens``."""
    lines: list[str] = []
    used = 0
    for memory in memories:
        when = memory.created[:10]
        line = f'- On {when} the user said: "{_one_line(memory.text)}"'
        if memory.reply:
            line += f' You answered: "{_one_line(memory.reply, 200)}"'
        cost = count(line) + 1
        if used + cost > max_tokens:
            continue  # a shorter one may still fit
        lines.append(line)
        used += cost
    return "\n".join(lines)


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split()).replace('"', "'")
    return shorten(flat, limit)
