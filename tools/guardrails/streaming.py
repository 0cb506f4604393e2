"""Masking a reply while it streams, so the screen shows exactly what is stored.

A model streams its reply in pieces of any size: words, parts of words, single letters.
Masking each piece alone lets "f u c k" (four pieces), "blow job" (a two-word phrase)
and "f-u-c-k" through, and masking neighbours together can swallow the "a" of "What a
s h i t show". :class:`StreamMasker` keeps the text that may still change and releases
only what :meth:`SafetyFilter.settled` says is final, masked exactly as
:meth:`SafetyFilter.mask_output` masks the whole reply: the joined stream equals the
stored reply, whatever the pieces.

Text without spaces still streams: every Chinese or Japanese character is a word of its
own, punctuation ends a word, and a word longer than
:data:`~tools.guardrails.filter.MAX_WORD` characters (a URL, a hash) is no word, so it
passes as it comes instead of being held back to its end.
"""

from __future__ import annotations

from tools.guardrails.filter import MAX_WORD, SafetyFilter, SafetyLevel, is_word_char, trailing_word

__all__ = ["StreamMasker"]


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
        self._pending = ""
        self._long_word = False  # the text released so far ends inside a long word
        self.masked: list[str] = []
        """Every masked word, as the model wrote it, in order."""

    def feed(self, piece: str) -> str:
        """Take the next piece of the reply; return the text that is now final, masked."""
        if self._level == "relaxed":
            return piece
        released = ""
        if self._long_word:
            # The rest of a word that is too long to be one passes as it is.
            end = 0
            while end < len(piece) and is_word_char(piece[end]):
                end += 1
            released, piece = piece[:end], piece[end:]
            if not piece:
                return released
            self._long_word = False
        self._pending += piece
        if trailing_word(self._pending) > MAX_WORD:
            # No listed word is this long: all of it is final now, the rest of the word
            # too, and what follows the word starts afresh.
            self._long_word = True
            return released + self._mask(self._take(len(self._pending)))
        cut = self._safety.settled(self._pending, self._level)
        return released + (self._mask(self._take(cut)) if cut else "")

    def finish(self) -> str:
        """The reply is complete: return the rest, masked."""
        if self._level == "relaxed":
            return ""
        return self._mask(self._take(len(self._pending)))

    def _take(self, n: int) -> str:
        head, self._pending = self._pending[:n], self._pending[n:]
        return head

    def _mask(self, text: str) -> str:
        result = self._safety.mask_output(text, self._level)
        self.masked.extend(result.masked)
        return result.text
