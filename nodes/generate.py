"""Generation: answer the new message with the local model, within one prompt budget.

The budget (``context.max_prompt_tokens``) is computed here, once every part is known:
the base system prompt, the concept prompt and the message must fit, or the message is
taken back out of the thread and the turn ends in ``reject`` (a clear
``MessageTooLongError``; the thread is as it was). The memory in the system prompt gives
way before the message is blamed: first the running summary (this prompt gets a shortened
copy, oldest detail first, :func:`fit_summary`), then the user's facts (the newest lines
that fit, :func:`fit_profile`). What is left goes to the optional parts, which shrink first: the
document passages, then the recalled memories, then the oldest turns of the history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, RemoveMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.errors import MessageTooLongError
from graph.messages import new_message
from graph.state import State
from tools.documents.retrieval import cite
from tools.guardrails.injection import quote_as_data
from tools.guardrails.streaming import StreamMasker
from tools.memory.long_term import Memory, fit_profile, recalled_lines
from tools.memory.summaries import fit_summary
from tools.models.masking import MaskingChatModel
from tools.prompting import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMER,
    Prompt,
    build_prompt,
    complete_turns,
    system_text,
    unsummarised,
)

log = logging.getLogger("assistant.generate")

JOIN_SLACK = 8
"""Tokens kept free when the optional parts are joined into one message (seams can tokenise
differently from the parts counted alone)."""


def make_generate(deps: Deps) -> ContextNode:
    """Build the ``generate`` node."""

    def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Build the prompt and stream the reply; a message that cannot fit goes to reject.

        The prompt: system (facts, summary), recent turns, concept prompt, passages,
        recalled memories, the message (after the passages, quoted as data, when there are
        any).
        """
        settings = deps.settings
        budget = settings.context.max_prompt_tokens
        message = new_message(state)
        concept = deps.aliases.concept(state.concept).prompt if state.concept else None
        system = system_text(
            deps.system_prompt, state.summary, state.profile or "", deps.memory_headings
        )

        def fixed(system: str) -> int:
            """What must fit: system, concept and message, each wrapped by the template."""
            parts = (system, message.text, concept or "")
            return sum(deps.count_tokens(t) for t in parts) + 3 * MESSAGE_OVERHEAD + REPLY_PRIMER

        needed = fixed(system)
        if needed > budget and (state.summary or state.profile):
            system, needed = memory_within(state, budget, fixed)
        if needed > budget:
            return too_long(state, message.id or "", needed, budget, runtime)
        # The optional parts share what is left; joining them costs a few tokens more.
        room = budget - needed - JOIN_SLACK
        documents, quoted, sources = documents_prompt(state, room)
        room -= sum(deps.count_tokens(t or "") for t in (documents, quoted))
        asked, extra = message, list[BaseMessage]()
        if quoted:
            # Documents are data: the passages come in a message of their own, after the
            # instruction that says so, and the question is restated after them.
            room -= MESSAGE_OVERHEAD
            extra.append(HumanMessage(quoted))
            question = deps.prompt_file("documents_question.md")
            asked = HumanMessage(question.replace("{question}", message.text), id=message.id)
        memories = memories_prompt(state, room)
        history = complete_turns(unsummarised(state.messages[:-1], state.summarised_through))

        def assemble(full: bool) -> Prompt:
            parts = (concept, documents, memories) if full else (concept,)
            return build_prompt(
                system=system,
                history=history,
                new_message=asked if full else message,
                count=deps.count_tokens,
                max_prompt_tokens=budget,
                max_history_turns=settings.context.max_history_turns,
                concept_prompt="\n\n".join(p for p in parts if p) or None,
                extra=extra if full else (),
            )

        try:
            prompt = assemble(full=True)
        except MessageTooLongError:  # a tokenizer merged differently at a seam: drop extras
            log.info("prompt budget: no room for passages and memories after all")
            prompt, sources = assemble(full=False), []
        if prompt.dropped_turns:
            log.info("prompt budget: dropped %d old turn(s)", prompt.dropped_turns)
        level = deps.safety_level(runtime.context)
        # The reply, and only the reply, runs with the LoRA adapter (model.lora_path).
        model: BaseChatModel = deps.reply_model
        if level != "relaxed":
            # Mask while streaming so raw words never reach the screen; the stream and
            # the stored reply are masked alike (tools/guardrails/streaming.py).
            model = MaskingChatModel(
                inner=deps.reply_model, masker=lambda: StreamMasker(deps.safety, level)
            )
        # stream=True: the reply's tokens reach every callback handler as they come (the
        # CLI prints them from this very thread), not only LangGraph's "messages" stream.
        reply = model.invoke(prompt.messages, stream=True, **deps.sampling(runtime.context))
        reply.response_metadata.setdefault("masked", [])
        reply.response_metadata.update(prompt_tokens=prompt.tokens)
        return {"messages": [reply], "prompt_tokens": prompt.tokens, "sources": sources}

    def memory_within(state: State, budget: int, fixed: Callable[[str], int]) -> tuple[str, int]:
        """The system prompt with the summary, then the user's facts, cut to fit the budget.

        The summary gives way first (oldest detail first, :func:`fit_summary`): it comes
        last in the system prompt, so the base prompt and the facts before it stay the
        prefix llama.cpp has cached. Only when the prompt does not fit even without it do
        the facts give way, oldest line first (:func:`fit_profile`). Only this prompt's
        copies are cut (the state's summary and facts stay whole); with no room at all,
        the prompt goes without them. Returns the system prompt and the fixed parts' tokens
        with it: more than the budget only when base prompt, concept and message alone are.
        """
        profile, heads = state.profile or "", deps.memory_headings
        system = system_text(deps.system_prompt, "", profile, heads)
        if state.summary:
            system = summary_within(state.summary, profile, budget, fixed)
        if fixed(system) > budget and profile:
            system = facts_within(profile, budget, fixed)
        return system, fixed(system)

    def summary_within(summary: str, profile: str, budget: int, fixed: Callable[[str], int]) -> str:
        """The system prompt with ``summary`` shortened to the room left next to the facts."""
        heads = deps.memory_headings
        bare = system_text(deps.system_prompt, "", profile, heads)
        # The heading and the line breaks around it come with any summary.
        room = budget - fixed(bare) - deps.count_tokens(heads.summary) - 2
        fitted = fit_summary(summary, room, deps.count_tokens) if room > 0 else None
        system = system_text(deps.system_prompt, fitted.text if fitted else "", profile, heads)
        if fixed(system) > budget:  # the seams tokenised differently: go without it
            system, fitted = bare, None
        log.warning(
            "prompt budget: the running summary (%d tokens) does not fit with this message; "
            "this prompt has %s",
            deps.count_tokens(summary),
            f"a {fitted.tokens}-token shortened copy" if fitted and fitted.text else "none",
        )
        return system

    def facts_within(profile: str, budget: int, fixed: Callable[[str], int]) -> str:
        """The system prompt without a summary and with the newest facts that fit."""
        heads = deps.memory_headings
        bare = system_text(deps.system_prompt, "", "", heads)
        # The heading and the line breaks around it come with any facts.
        room = budget - fixed(bare) - deps.count_tokens(heads.profile) - 2
        kept = fit_profile(profile, deps.count_tokens, room) if room > 0 else ""
        system = system_text(deps.system_prompt, "", kept, heads)
        if fixed(system) > budget:  # the seams tokenised differently: go without them
            system, kept = bare, ""
        log.warning(
            "prompt budget: the user's facts (%d lines, %d tokens) do not fit with this "
            "message; this prompt has the newest %d",
            len(profile.splitlines()),
            deps.count_tokens(profile),
            len(kept.splitlines()),
        )
        return system

    def too_long(
        state: State, message_id: str, needed: int, budget: int, runtime: Runtime[Context]
    ) -> dict[str, Any]:
        """Take the message back out and flag the turn for ``reject``."""
        # ``needed`` counts only what cannot give way: the user's facts and the summary
        # were already left out of it, so the message (and the concept prompt) is the cause.
        gave_way = [
            name
            for name, part in (("the user's facts", state.profile), ("the summary", state.summary))
            if part
        ]
        reason = (
            f"the message needs {needed} prompt tokens with the system prompt"
            f"{' and the concept prompt' if state.concept else ''}"
            f"{' (without ' + ' and '.join(gave_way) + ')' if gave_way else ''}; the budget "
            f"(context.max_prompt_tokens) is {budget}"
        )
        log.info("message rejected: %s", reason)
        return {
            "messages": [RemoveMessage(id=message_id)],
            "safety": {
                **state.safety,
                "allowed": False,
                "level": deps.safety_level(runtime.context),
                "reason": reason,
                "category": "message_too_long",
            },
        }

    def memories_prompt(state: State, room: int) -> str | None:
        """The recalled past turns, quoted, within ``room`` and ``long_term.max_context_tokens``."""
        if not state.memories:
            return None
        heading = deps.memory_headings.recalled
        budget = min(deps.settings.long_term.max_context_tokens, room) - deps.count_tokens(heading)
        lines = recalled_lines(
            [Memory(**m) for m in state.memories], deps.count_tokens, max(budget - 2, 0)
        )
        return f"{heading}\n{lines}" if lines else None

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


def route_after_generate(state: State) -> Literal["check_output", "reject"]:
    """A reply goes on to the output check; a message that did not fit is rejected."""
    if state.safety.get("category") == "message_too_long":
        return "reject"
    return "check_output"
