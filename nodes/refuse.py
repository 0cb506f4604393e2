"""Refuse a blocked message with the configured template."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage

from graph.deps import Deps, Node
from graph.messages import BLOCKED_KEY
from graph.state import State
from tools.guardrails import SafetyVerdict
from tools.guardrails.guard import refusal_text


def make_refuse(deps: Deps) -> Node:
    """Build the ``refuse`` node."""

    def refuse(state: State) -> dict[str, Any]:
        """Answer with the refusal; it is stored in the thread but never shown to the model."""
        verdict = SafetyVerdict(
            allowed=False,
            level=state.safety.get("level", "moderate"),
            reason=state.safety.get("reason"),
            category=state.safety.get("category"),
            matches=(),
        )
        # The reason may name the words it found; the refusal does not say them back.
        text = refusal_text(deps.settings.safety.refusal_template, deps.safety, verdict)
        return {"messages": [AIMessage(text, additional_kwargs={BLOCKED_KEY: True})]}

    return refuse
