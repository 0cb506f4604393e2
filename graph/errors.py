"""Errors a turn raises to its caller: the message cannot be answered, and why.

Both are ``ValueError`` s, so callers that only know "bad input" can catch that; the
thread is left as it was before the turn in either case.
"""

from __future__ import annotations


class InvalidMessageError(ValueError):
    """The new message cannot be answered (empty, or not a user message)."""


class MessageTooLongError(InvalidMessageError):
    """The message (with everything the prompt must hold) does not fit the prompt budget."""
