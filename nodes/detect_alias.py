"""Alias detection: pick the specialised prompt a phrase in the message asks for."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import Deps
from graph.state import State
from nodes.check_input import new_message


def make_detect_alias(deps: Deps):  # type: ignore[no-untyped-def]
    """Build the ``detect_alias`` node."""

    def detect_alias(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Set ``concept`` to the best alias match of the new message, or None."""
        fuzzy, cutoff = deps.fuzzy(runtime.context)
        match = deps.aliases.match(new_message(state).text, fuzzy=fuzzy, cutoff=cutoff)
        return {"concept": match.concept if match else None}

    return detect_alias
