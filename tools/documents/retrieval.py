"""Retrieval helpers: follow-up detection, query rewriting, quoting passages, citations.

Pure functions: the ``retrieve`` and ``generate`` nodes call them, the unit tests call them
without a graph, a model or a vector store. A passage here is the dict the state keeps in
``sources`` (``source``, ``name``, ``page``, ``section``, ``score``, ``text``, ``id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from tools.prompting import Counter, Turn
from tools.text import is_phatic, shorten

Passage = Mapping[str, Any]

# Words that point back into the conversation ("when was *it* built?"): a message with one
# of them is rewritten before retrieval; a self-contained one is searched as it is, which
# saves a model call.
_REFERRING = {
    "it", "its", "it's", "they", "them", "their", "theirs", "this", "that", "these",
    "those", "there", "he", "him", "his", "she", "her", "hers", "one", "ones", "former",
    "latter", "same", "else", "other", "another", "more", "also", "too", "again",
}  # fmt: skip
_OPENERS = ("and ", "but ", "so ", "what about", "how about", "then ", "also ", "why not")
_WORD = re.compile(r"[a-z']+")
# Marks around each quoted passage; the same marks inside a document are defused, so a
# document cannot close its own quote and pose as instructions.
_OPEN, _CLOSE = "<<<", ">>>"


def looks_like_followup(text: str) -> bool:
    """True when the message seems to lean on earlier turns (pronouns, "and ...", very short)."""
    lowered = text.strip().lower()
    words = _WORD.findall(lowered)
    if not words or is_phatic(text):
        return False
    return lowered.startswith(_OPENERS) or len(words) <= 3 or any(w in _REFERRING for w in words)


def rewrite_request(history: Sequence[Turn], message: str, max_turns: int = 2) -> str:
    """The user message asking the model for a standalone query (last turns as context)."""
    names = {"human": "User", "ai": "Assistant"}
    lines = [
        f"{names[m.type]}: {_clip(m.text, 400)}"
        for turn in history[-max_turns:]
        for m in turn.messages
    ]
    return (
        "Conversation so far:\n"
        + "\n".join(lines)
        + f"\n\nLatest message: {message}\n\nStandalone search query:"
    )


def clean_query(reply: str, fallback: str) -> str:
    """The model's rewritten query, tidied; ``fallback`` when it gave nothing usable."""
    for line in reply.strip().splitlines():
        line = re.sub(r"^(standalone )?(search )?query\s*:\s*", "", line.strip(), flags=re.I)
        line = line.strip().strip("\"'`").strip()
        if line:
            return line if len(line) <= 300 else fallback
    return fallback


def contextual_query(history: Sequence[Turn], message: str) -> str:
    """A query without a model: the previous user message and the new one together."""
    previous = next(
        (m.text for turn in reversed(history) for m in turn.messages if m.type == "human"), ""
    )
    return f"{_clip(previous, 300)} {message}".strip()


def cite(passage: Passage) -> str:
    """How a passage is named to the user: file name, then page or section."""
    where = ""
    if passage.get("page"):
        where = f", page {passage['page']}"
    elif passage.get("section"):
        where = f", section {passage['section']!s}"
    return f"{passage.get('name') or passage.get('source', '?')}{where}"


def quote_passages(
    passages: Sequence[Passage], count: Counter, budget: int
) -> tuple[str, list[Passage]]:
    """Number and quote passages, best first, as many as fit ``budget`` tokens.

    Returns:
        The quoted block and the passages it holds (their numbers are their positions + 1).
    """
    blocks: list[str] = []
    kept: list[Passage] = []
    used = 0
    for passage in passages:
        n = len(kept) + 1
        text = str(passage.get("text", "")).replace(_OPEN, "< < <").replace(_CLOSE, "> > >")
        block = f"{_OPEN}document {n}: {cite(passage)}\n{text.strip()}\n{_CLOSE}"
        cost = count(block)
        if used + cost > budget:
            if kept:
                break
            continue  # one passage larger than the whole budget: try the next one
        blocks.append(block)
        kept.append(passage)
        used += cost
    return "\n\n".join(blocks), kept


def _clip(text: str, limit: int) -> str:
    return shorten(text, limit)
