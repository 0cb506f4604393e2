"""Alias detection: pick the specialised prompt a phrase in the message asks for."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.messages import new_message
from graph.state import State


def make_detect_alias(deps: Deps) -> ContextNode:
    """Build the ``detect_alias`` node."""

    def detect_alias(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Set ``concept`` to the best alias match of the new message, or None."""
        fuzzy, cutoff = deps.fuzzy(runtime.context)
        match = deps.aliases.match(new_message(state).text, fuzzy=fuzzy, cutoff=cutoff)
        return {"concept": match.concept if match else None}

    return detect_alias
