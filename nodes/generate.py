"""Generation: answer the new message with the local model, within the prompt budget."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.messages import new_message
from graph.state import State
from tools.documents.retrieval import cite
from tools.guardrails.injection import quote_as_data
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
        room = settings.context.max_prompt_tokens - fixed - 4 * MESSAGE_OVERHEAD - REPLY_PRIMER
        documents, quoted, sources = documents_prompt(state, room)
        history = complete_turns(unsummarised(state.messages[:-1], state.summarised_through))
        extra: list[BaseMessage] = []
        if quoted:
            # Documents are data: the passages come in a message of their own, after the
            # instruction that says so, and the question is restated after them.
            extra.append(HumanMessage(quoted))
            question = deps.prompt_file("documents_question.md")
            message = HumanMessage(question.replace("{question}", message.text), id=message.id)
        prompt = build_prompt(
            system=system,
            history=history,
            new_message=message,
            count=deps.count_tokens,
            max_prompt_tokens=settings.context.max_prompt_tokens,
            max_history_turns=settings.context.max_history_turns,
            concept_prompt="\n\n".join(p for p in (concept, documents) if p) or None,
            extra=extra,
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

    def documents_prompt(
        state: State, room: int
    ) -> tuple[str | None, str | None, list[dict[str, Any]]]:
        """Return the documents' part of the prompt for this turn.

        That is the instruction, the quoted passages (within ``room`` tokens) and the
        passages kept, each with ``flagged`` (it gave orders to the assistant).
        """
        status = state.retrieval.get("status")
        if status == "none_relevant":
            return deps.prompt_file("documents_none.md"), None, []
        if status != "found":
            return None, None, []
        instruction = deps.prompt_file("documents.md")
        question = deps.prompt_file("documents_question.md")
        overhead = sum(deps.count_tokens(t) for t in (instruction, question))
        budget = min(deps.settings.retrieval.max_context_tokens, room - overhead)
        quoted, kept = quote_as_data(
            state.sources,
            deps.count_tokens,
            budget,
            mode=deps.settings.safety.flagged_passages,
            datamark=deps.settings.safety.datamark,
            cite=cite,
        )
        if not kept:
            log.info("no passage fits the prompt budget (or all were left out as flagged)")
            return deps.prompt_file("documents_none.md"), None, []
        flagged = [p["name"] for p in kept if p["flagged"]]
        if flagged:
            log.info("passages that give orders to the assistant: %s", ", ".join(flagged))
        return instruction, quoted, kept

    return generate
