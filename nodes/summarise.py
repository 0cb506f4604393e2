"""Summarisation: fold the turns that leave the prompt window into a running summary."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.constants import TAG_NOSTREAM

from graph.deps import Deps, Node
from graph.state import State
from tools.prompting import Counter, Turn, complete_turns, unsummarised

log = logging.getLogger("assistant.summarise")


def turns_to_fold(state: State, deps: Deps) -> list[Turn]:
    """The oldest live turns to summarise now, or [] while the history is short.

    Folding happens in batches (down to ``keep_turns``) rather than one turn per turn,
    so the prompt prefix stays the same between summaries and llama.cpp can reuse it.
    """
    cfg = deps.settings.summarisation
    if not cfg.enabled:
        return []
    turns = complete_turns(unsummarised(state.messages, state.summarised_through))
    count: Counter = deps.count_tokens
    too_many = len(turns) > cfg.max_turns
    too_big = sum(turn.tokens(count) for turn in turns) > cfg.max_tokens
    if not (too_many or too_big) or len(turns) <= cfg.keep_turns:
        return []
    return turns[: len(turns) - cfg.keep_turns]


def transcript(turns: list[Turn]) -> str:
    """The turns as plain "User:/Assistant:" lines (only ever shown to the summariser)."""
    names = {"human": "User", "ai": "Assistant"}
    return "\n".join(f"{names[m.type]}: {m.text}" for turn in turns for m in turn.messages)


def make_summarise(deps: Deps) -> Node:
    """Build the ``summarise`` node."""

    def summarise(state: State) -> dict[str, Any]:
        """Update the summary with the turns leaving the window and move the cursor."""
        fold = turns_to_fold(state, deps)
        if not fold:
            return {}
        request = (
            f"Current summary:\n{state.summary or '(empty)'}\n\n"
            f"Next lines of the conversation:\n{transcript(fold)}\n\nUpdated summary:"
        )
        reply = deps.model.invoke(
            [SystemMessage(deps.summary_prompt), HumanMessage(request)],
            # The summary is bookkeeping, not an answer: keep it out of the token stream.
            config={"tags": [TAG_NOSTREAM]},
            temperature=0.0,
            do_sample=False,
            max_new_tokens=deps.settings.summarisation.max_summary_tokens,
        )
        summary = reply.text.strip()
        if not summary:
            log.warning("the summariser returned nothing; keeping the turns live")
            return {}
        log.info("summarised %d turn(s) into %d characters", len(fold), len(summary))
        return {"summary": summary, "summarised_through": fold[-1].last_id}

    return summarise


def make_needs_summary(deps: Deps) -> Callable[[State], Literal["summarise", "__end__"]]:
    """Build the routing function after ``check_output``."""

    def needs_summary(state: State) -> Literal["summarise", "__end__"]:
        """Summarise only when the live history has grown past the thresholds."""
        return "summarise" if turns_to_fold(state, deps) else "__end__"

    return needs_summary
