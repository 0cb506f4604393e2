"""Generation: answer the new message with the local model, within the prompt budget."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import Deps
from graph.state import State
from nodes.check_input import new_message
from tools.guarded import MaskingChatModel
from tools.prompting import build_prompt, complete_turns, system_text, unsummarised

log = logging.getLogger("assistant.generate")


def make_generate(deps: Deps):  # type: ignore[no-untyped-def]
    """Build the ``generate`` node."""

    def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Build the prompt (summary, recent turns, concept prompt) and stream the reply."""
        settings = deps.settings
        message = new_message(state)
        concept = deps.aliases.concept(state.concept).prompt if state.concept else None
        history = complete_turns(unsummarised(state.messages[:-1], state.summarised_through))
        prompt = build_prompt(
            system=system_text(deps.system_prompt, state.summary),
            history=history,
            new_message=message,
            count=deps.count_tokens,
            max_prompt_tokens=settings.context.max_prompt_tokens,
            max_history_turns=settings.context.max_history_turns,
            concept_prompt=concept,
        )
        if prompt.dropped_turns:
            log.info("prompt budget: dropped %d old turn(s)", prompt.dropped_turns)
        level = deps.safety_level(runtime.context)
        masked: list[str] = []

        def mask(text: str) -> str:
            result = deps.safety.mask_output(text, level)
            masked.extend(result.masked)
            return result.text

        model: BaseChatModel = deps.model
        if level != "relaxed":
            # Mask while streaming so raw words never reach the screen.
            model = MaskingChatModel(inner=deps.model, mask=mask)
        reply = model.invoke(prompt.messages, **deps.sampling(runtime.context))
        reply.response_metadata.update(prompt_tokens=prompt.tokens, masked=masked)
        return {"messages": [reply], "prompt_tokens": prompt.tokens}

    return generate
