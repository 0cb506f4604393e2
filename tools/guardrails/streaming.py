"""Masking a reply while it streams, so the screen shows exactly what is stored.

A model streams its reply in pieces of any size: words, parts of words, single letters.
Masking each piece alone lets "f u c k" (four pieces), "blow job" (a two-word phrase)
and "f-u-c-k" through, and masking neighbours together can swallow the "a" of "What a
s h i t show". :class:`StreamMasker` keeps the text that may still change and releases
only what :meth:`SafetyFilter.settled` says is final, masked by
:meth:`SafetyFilter.mask_part` in the light of the text before it (a name after a given
name, the rest of a word too long to be one), exactly as
:meth:`SafetyFilter.mask_output` masks the whole reply: the joined stream equals the
stored reply, whatever the pieces.

Text without spaces still streams: every Chinese or Japanese character is a word of its
own, a gap no listed phrase spans (an emoji, "...", a blank line) ends what came before
it, and a word longer than :data:`~tools.guardrails.filter.MAX_WORD` characters (a URL,
a hash, a run of Thai) is no word, so it passes as it comes instead of being held back to
its end.

What was shown is kept as context back to the word before the last point no reading
looks across (:meth:`SafetyFilter.restart`: ", ", an emoji, the place next to a Chinese
character), or else :data:`CONTEXT` folded characters, so a piece of such text is read
in a few characters, not in the whole context again.
"""

from __future__ import annotations

import string

from tools.guardrails.filter import MAX_WORD, SafetyFilter, SafetyLevel
from tools.text import fold_with_offsets

__all__ = ["StreamMasker"]

# How much of the text already shown is kept as context (folded characters at least)
# when no point that no reading looks across is nearer:
# more than a long word needs to stay long, and more than the few words before a word
# that decide how it is read.
CONTEXT = 2 * MAX_WORD + 8

# What may stand before a word of ASCII letters so that it is one word on its own: not a
# letter, digit or leet symbol (part of the word), nor a control character (dropped).
_WORD_EDGE = frozenset(string.whitespace + string.punctuation) - frozenset("_@$!|+*")


class StreamMasker:
    """Masks one streamed reply, piece by piece.

    Args:
        safety: The filter whose masking the stream must match.
        level: The run's safety level; ``relaxed`` passes everything through at once.

    Example:
        >>> masker = StreamMasker(SafetyFilter(), "moderate")
        >>> "".join([masker.feed("what the f"), masker.feed(" u c k"), masker.finish()])
        'what the * * * *'

    """

    def __init__(self, safety: SafetyFilter, level: SafetyLevel) -> None:
        self._safety = safety
        self._level = level
        self._text = ""  # the context (shown already), then the text held back
        self._shown = 0  # where the held-back text starts in _text
        self._quiet = False  # settled(_text) released nothing
        self.masked: list[str] = []
        """Every masked word, as the model wrote it, in order."""

    @property
    def held(self) -> int:
        """How many characters of the reply are held back now."""
        return len(self._text) - self._shown

    def feed(self, piece: str) -> str:
        """Take the next piece of the reply; return the text that is now final, masked."""
        if self._level == "relaxed":
            return piece
        if self._quiet and self._lengthens_word(piece):
            self._text += piece  # settled would say what it said: nothing to release
            return ""
        self._text += piece
        cut = self._safety.settled(self._text, self._level)
        self._quiet = cut <= self._shown
        return "" if self._quiet else self._release(cut)

    def _lengthens_word(self, piece: str) -> bool:
        """Tell whether ``piece`` only lengthens a word of two ASCII letters or more.

        Then :meth:`SafetyFilter.settled` says what it said before the piece: the word
        being written is held back whatever it becomes, it is no one letter of a
        spelled-out word, and it stays short enough to be a word (:data:`MAX_WORD`);
        nothing before it reads differently.
        """
        if not (piece.isascii() and piece.isalpha()):
            return False
        tail = self._text[-(MAX_WORD + 1) :]
        word = len(tail) - len(tail.rstrip(string.ascii_letters))
        if word < 2 or word + len(piece) > MAX_WORD:
            return False
        return word == len(self._text) or tail[-word - 1] in _WORD_EDGE

    def finish(self) -> str:
        """The reply is complete: return the rest, masked."""
        if self._level == "relaxed" or self.held == 0:
            return ""
        return self._release(len(self._text))

    def _release(self, cut: int) -> str:
        result = self._safety.mask_part(self._text, self._level, self._shown, cut)
        self.masked.extend(result.masked)
        # What comes after a point no reading looks across needs nothing before the
        # word before it as context (SafetyFilter.restart): in text without spaces
        # (Chinese, emoji, punctuation) that is a few characters, so each piece reads a
        # short text, not the whole context again.
        keep = self._safety.restart(self._text[:cut])
        if keep <= cut - CONTEXT:
            # Else a context of at least CONTEXT folded characters (invisible ones fold
            # to nothing). A word cut at its start is no harm: what is masked in it was
            # shown.
            keep_all = max(0, cut - CONTEXT)
            while keep_all > 0 and len(fold_with_offsets(self._text[keep_all:cut])[0]) < CONTEXT:
                keep_all = max(0, keep_all - CONTEXT)
            keep = max(keep, keep_all)
        self._text, self._shown = self._text[keep:], cut - keep
        return result.text
