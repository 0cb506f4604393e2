"""Output guardrail: mask the reply, and withdraw a reply in a category this level refuses."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.messages import BLOCKED_KEY, CHECKED_KEY
from graph.state import State
from tools.guardrails.guard import guard_for, refusal_text

log = logging.getLogger("assistant.safety")


def make_check_output(deps: Deps) -> ContextNode:
    """Build the ``check_output`` node."""

    def check_output(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Mask the reply for this run's level, then check what it says.

        Masking already happened while the reply streamed (see generate); this records
        what was masked. A reply in a category the level refuses (the input check missed
        the request, the model answered it) is replaced by the refusal before it is
        stored, and the turn is kept out of the model's sight from then on, like a
        refused message. Part of it may have streamed already: ``safety.withdrawn`` tells
        the caller (the CLI says so under the reply).
        """
        level = deps.safety_level(runtime.context)
        reply = state.messages[-1]
        result = deps.safety.mask_output(reply.text, level)
        masked = [*reply.response_metadata.get("masked", []), *result.masked]
        safety: dict[str, Any] = {**state.safety, "masked": masked}
        update: dict[str, Any] = {"safety": safety}
        # Same id: add_messages replaces the reply instead of appending a second one. Marked
        # as the model's own: check_input checks an unmarked one as a caller's claim.
        update["messages"] = [
            AIMessage(
                result.text,
                id=reply.id,
                response_metadata=reply.response_metadata,
                additional_kwargs={**reply.additional_kwargs, CHECKED_KEY: True},
            )
        ]
        if not deps.settings.safety.check_replies:
            return update
        guard = guard_for(deps.settings, deps.safety, lambda: deps.model, deps.can_judge)
        # The reply judge reads the request with the reply: a refusal or safety advice is
        # only safe or unsafe as an answer to something.
        question = state.messages[-2]
        # How suspect the input check found the request (None: not judged with scores).
        request_harmful = (state.safety.get("scores") or {}).get("p_harmful")
        verdict = guard.check_reply(question.text, result.text, level, request_harmful)
        if verdict.allowed:
            return update
        log.info("reply withdrawn at %s by the %s layer: %s", level, verdict.layer, verdict.reason)
        safety.update(
            allowed=False,
            withdrawn=True,
            reason=verdict.reason,
            category=verdict.category,
            layer=verdict.layer,
            rule=verdict.rule,
        )
        update["messages"] = [
            HumanMessage(question.text, id=question.id, additional_kwargs={BLOCKED_KEY: True}),
            AIMessage(
                refusal_text(deps.settings.safety.refusal_template, deps.safety, verdict),
                id=reply.id,
                additional_kwargs={BLOCKED_KEY: True},
            ),
        ]
        return update

    return check_output
