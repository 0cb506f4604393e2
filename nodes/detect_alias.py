"""Alias detection: pick the specialised prompt the message asks for, by alias and meaning."""

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
        """Set ``concept`` to what the router chose for the new message, or None."""
        fuzzy, cutoff = deps.fuzzy(runtime.context)
        route = deps.router.route(new_message(state).text, fuzzy=fuzzy, cutoff=cutoff)
        return {"concept": route.concept}

    return detect_alias
