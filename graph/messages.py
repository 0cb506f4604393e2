"""Message conventions every node shares: the turn's new message and withheld turns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage

from graph.errors import InvalidMessageError

BLOCKED_KEY = "blocked"
"""``additional_kwargs`` key on a withheld user message and its refusal."""

CHECKED_KEY = "safety_checked"
"""``additional_kwargs`` key on a user message the input guardrail has passed, and on a
reply the output guardrail has (or a caller's assistant message the reply check passed): a
message without it (one a caller put in the thread's history, such as the HTTP API's
earlier turns) is checked on the next turn."""

WITHHELD = "[message withheld by the safety filter]"
"""What a blocked user message is stored as: its text never reaches the model again."""


class HasMessages(Protocol):
    """Anything with a ``messages`` list: the graph state, or a test's stand-in."""

    @property
    def messages(self) -> Sequence[AnyMessage]:
        """The conversation, oldest first."""
        ...


def is_blocked(message: BaseMessage) -> bool:
    """True for a withheld user message or a refusal: the model never sees them."""
    return bool(message.additional_kwargs.get(BLOCKED_KEY))


def new_message(state: HasMessages) -> HumanMessage:
    """The message this turn answers: the last one, which must come from the user.

    Raises:
        InvalidMessageError: The last message is missing or not a user message.
    """
    if not state.messages or not isinstance(state.messages[-1], HumanMessage):
        raise InvalidMessageError(
            'a turn needs a new user message: invoke with {"messages": [("user", "...")]}'
        )
    return state.messages[-1]
