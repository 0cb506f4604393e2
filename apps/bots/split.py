r"""Split a long reply into messages that fit a chat platform's limit.

Pieces end at the best boundary that fits: a blank line, then a line end, then a sentence
end, then a space, and only then between two characters. "Character" means a grapheme
cluster (:data:`tools.text.GRAPHEME`, ``regex``'s ``\X``): an emoji with its modifiers, a
flag, a letter with its combining accents stay whole. A fenced code block cut in two is
closed at the end of one piece and reopened (with its language) at the start of the next,
so each piece renders.

Limits are counted by a ``measure`` function, because platforms count differently:
Telegram counts UTF-16 code units (an emoji outside the BMP is 2), Slack counts the text
after escaping ``& < >``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tools.text import GRAPHEME as _GRAPHEME

_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s|[。！？]")
_FENCE = re.compile(r"^ {0,3}(`{3,8}|~{3,8})(.*)$")

Measure = Callable[[str], int]


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units, the way Telegram counts a message's characters."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int, measure: Measure = len) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` units each, at natural boundaries.

    Args:
        text: The reply. Leading and trailing whitespace is dropped; an empty or blank
            text gives no pieces.
        limit: The most units (as counted by ``measure``) a piece may have; at least 1.
        measure: Counts a string's units; must be additive over grapheme clusters (the
            units of a string are the sum of its clusters' units).

    Returns:
        The pieces in order. Joined, they give the text back, except for the whitespace at
        the cuts and the fence lines added to close and reopen a cut code block.

    Raises:
        ValueError: ``limit`` is below 1, or one grapheme cluster alone exceeds it.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1 (got {limit})")
    text = text.strip()
    pieces: list[str] = []
    reopen = ""  # the fence line that reopens a code block cut at the previous piece
    while text:
        head = reopen + text
        if measure(head) <= limit:
            pieces.append(head)
            break
        budget = limit - measure(reopen)
        if budget < 1:  # the reopening fence line alone does not fit: drop it
            reopen, budget = "", limit
        cut, rest_at = _cut(text, budget, measure)
        open_fence = _open_fence(reopen + text[:cut])
        close = ""
        if open_fence is not None:
            close = "\n" + _marker(open_fence)
            room = budget - measure(close)
            # Close the block only if that leaves a useful piece; else cut it as plain text.
            if room * 2 >= budget:
                cut, rest_at = _cut(text, room, measure)
                open_fence = _open_fence(reopen + text[:cut])
            else:
                open_fence = None
        piece = reopen + text[:cut].rstrip()
        text = text[rest_at:].lstrip("\n")
        if open_fence is not None and text.strip():
            pieces.append(piece + "\n" + _marker(open_fence))
            reopen = open_fence + "\n"
        else:
            pieces.append(piece)
            reopen = ""
        text = text if text.strip() else ""
    return [piece for piece in pieces if piece.strip()]


def _cut(text: str, budget: int, measure: Measure) -> tuple[int, int]:
    """Where to end the piece (``cut``) and where the rest starts, for ``budget`` units."""
    ends: list[int] = []  # end offset of each whole grapheme cluster that fits
    used = 0
    for match in _GRAPHEME.finditer(text):
        used += measure(match.group())
        if used > budget:
            break
        ends.append(match.end())
    if not ends:
        first = _GRAPHEME.match(text)
        shown = first.group() if first else text[:1]
        raise ValueError(f"one character ({shown!r}) is longer than the limit ({budget})")
    fits = ends[-1]
    window = text[:fits]
    floor = fits // 3  # a cut this early would waste most of the piece: try a finer boundary
    for pattern in ("\n\n", "\n"):
        at = window.rfind(pattern)
        if at > floor:
            return at, at + len(pattern)
    sentence = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() > floor]
    if sentence:
        return sentence[-1], sentence[-1]
    space = max(window.rfind(" "), window.rfind("\t"))
    if space > floor:
        return space, space + 1
    return fits, fits


def _marker(fence_line: str) -> str:
    """The backticks or tildes that open (and so close) a fence."""
    return fence_line[: len(fence_line) - len(fence_line.lstrip(fence_line[0]))]


def _open_fence(piece: str) -> str | None:
    """The opening line of a code fence left open at the end of ``piece``, if any."""
    opening: str | None = None
    for line in piece.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        if opening is None:
            opening = match.group(1) + match.group(2).strip()
        elif match.group(1)[0] == opening[0] and not match.group(2).strip():
            opening = None
    return opening
