"""Checkpointers: where LangGraph keeps threads between turns."""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from graph.settings import Settings


def make_checkpointer(settings: Settings) -> BaseCheckpointSaver[str] | None:
    """The checkpointer chosen by ``memory.backend`` (None when memory is off).

    ``memory`` keeps threads for the life of the process; ``none`` (or
    ``memory.enabled = false``) makes every turn stand alone.
    """
    if not settings.memory.enabled or settings.memory.backend == "none":
        return None
    return InMemorySaver()
