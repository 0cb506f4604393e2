"""Refuse a blocked message with the configured template."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage

from graph.deps import Deps, Node
from graph.messages import BLOCKED_KEY
from graph.state import State


def make_refuse(deps: Deps) -> Node:
    """Build the ``refuse`` node."""

    def refuse(state: State) -> dict[str, Any]:
        """Answer with the refusal; it is stored in the thread but never shown to the model."""
        level = state.safety.get("level", "")
        text = deps.settings.safety.refusal_template.format(
            reason=state.safety.get("reason") or "not allowed", level=level
        )
        if level in ("strict", "moderate"):
            # The reason names the words it found; the refusal must not say them back.
            text = deps.safety.mask_output(text, level).text
        return {"messages": [AIMessage(text, additional_kwargs={BLOCKED_KEY: True})]}

    return refuse
