"""Generation: answer the new message with the local model, within the prompt budget."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.messages import new_message
from graph.state import State
from tools.documents.retrieval import quote_passages
from tools.guardrails.streaming import StreamMasker
from tools.models.masking import MaskingChatModel
from tools.prompting import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMER,
    build_prompt,
    complete_turns,
    system_text,
    unsummarised,
)

log = logging.getLogger("assistant.generate")


def make_generate(deps: Deps) -> ContextNode:
    """Build the ``generate`` node."""

    def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Build the prompt (summary, recent turns, concept prompt) and stream the reply."""
        settings = deps.settings
        message = new_message(state)
        concept = deps.aliases.concept(state.concept).prompt if state.concept else None
        system = system_text(deps.system_prompt, state.summary)
        # What the prompt needs besides history; the passages get at most what is left.
        fixed = sum(deps.count_tokens(t) for t in (system, message.text, concept or ""))
        room = settings.context.max_prompt_tokens - fixed - 3 * MESSAGE_OVERHEAD - REPLY_PRIMER
        documents, sources = documents_prompt(state, room)
        history = complete_turns(unsummarised(state.messages[:-1], state.summarised_through))
        prompt = build_prompt(
            system=system,
            history=history,
            new_message=message,
            count=deps.count_tokens,
            max_prompt_tokens=settings.context.max_prompt_tokens,
            max_history_turns=settings.context.max_history_turns,
            concept_prompt="\n\n".join(p for p in (concept, documents) if p) or None,
        )
        if prompt.dropped_turns:
            log.info("prompt budget: dropped %d old turn(s)", prompt.dropped_turns)
        level = deps.safety_level(runtime.context)
        model: BaseChatModel = deps.model
        if level != "relaxed":
            # Mask while streaming so raw words never reach the screen; the stream and
            # the stored reply are masked alike (tools/guardrails/streaming.py).
            model = MaskingChatModel(
                inner=deps.model, masker=lambda: StreamMasker(deps.safety, level)
            )
        reply = model.invoke(prompt.messages, **deps.sampling(runtime.context))
        reply.response_metadata.setdefault("masked", [])
        reply.response_metadata.update(prompt_tokens=prompt.tokens)
        return {"messages": [reply], "prompt_tokens": prompt.tokens, "sources": sources}

    def documents_prompt(state: State, room: int) -> tuple[str | None, list[dict[str, Any]]]:
        """The quoted passages for this turn (within ``room`` tokens), and those kept."""
        status = state.retrieval.get("status")
        if status == "none_relevant":
            return deps.prompt_file("documents_none.md"), []
        if status != "found":
            return None, []
        template = deps.prompt_file("documents.md")
        budget = min(deps.settings.retrieval.max_context_tokens, room - deps.count_tokens(template))
        quoted, kept = quote_passages(state.sources, deps.count_tokens, budget)
        if not kept:
            log.info("no room for the passages in the prompt budget")
            return deps.prompt_file("documents_none.md"), []
        return template.replace("{passages}", quoted), [dict(p) for p in kept]

    return generate
