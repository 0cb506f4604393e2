"""Output guardrail: mask profanity in the reply (strict and moderate), record what was masked."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.state import State


def make_check_output(deps: Deps) -> ContextNode:
    """Build the ``check_output`` node."""

    def check_output(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Mask the reply for this run's level; relaxed leaves it as the model wrote it."""
        level = deps.safety_level(runtime.context)
        reply = state.messages[-1]
        result = deps.safety.mask_output(reply.text, level)
        # Most masking already happened while streaming (see generate); report both.
        masked = [*reply.response_metadata.get("masked", []), *result.masked]
        update: dict[str, Any] = {"safety": {**state.safety, "masked": masked}}
        if result.text != reply.text:
            # Same id: add_messages replaces the reply instead of appending a second one.
            update["messages"] = [
                AIMessage(result.text, id=reply.id, response_metadata=reply.response_metadata)
            ]
        return update

    return check_output
