"""Summarisation: fold the turns that leave the prompt window into a running summary.

The summariser's answer is checked before it is used (:func:`summary_problem`): not
empty, not a placeholder, not a copy of the request, and it keeps every name and number
the user stated about themselves in the folded turns and every one the summary so far
held. A bad answer is asked for once more, naming what was missing; if that fails too,
the summary keeps the user's own sentences instead (:func:`extractive_summary`).

The summary stays within ``summarisation.max_summary_tokens`` however long the thread
gets: the model's is cut there, the extractive one is shortened oldest detail first
(:func:`fit_summary`), with a warning and a marker counting what was left out. The
folded messages stay whole in the thread's checkpoint.

After the summary the prompt prefix has changed (the system prompt holds the summary and
the user's facts, and the folded turns are gone), so the next turn would evaluate it
from scratch. The node warms that prefix right away, while the user reads the reply.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.state import State
from tools.memory.facts import missing_terms
from tools.memory.summaries import (
    FittedSummary,
    extractive_summary,
    fit_summary,
    required_terms,
    summary_problem,
    summary_request,
    summary_terms,
    tidy,
    transcript,
)
from tools.prompting import Counter, Turn, complete_turns, system_text, unsummarised

log = logging.getLogger("assistant.summarise")

ATTEMPTS = 2
"""Summariser calls per summary at most (the first, and one that names what was missing)."""


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


def _as_written(terms: list[str], text: str) -> list[str]:
    """The terms as the user wrote them ("Priya", not "priya")."""
    shown = []
    for term in terms:
        found = re.search(rf"\b{re.escape(term)}\b", text, re.IGNORECASE)
        shown.append(found.group(0) if found else term)
    return shown


def make_summarise(deps: Deps) -> ContextNode:
    """Build the ``summarise`` node."""

    def ask(request: str) -> tuple[str, bool]:
        reply = deps.model.invoke(
            [SystemMessage(deps.summary_prompt), HumanMessage(request)],
            # The summary is bookkeeping, not an answer: keep it out of the token stream.
            config={"tags": [TAG_NOSTREAM]},
            temperature=0.0,
            do_sample=False,
            max_new_tokens=deps.settings.summarisation.max_summary_tokens,
        )
        return reply.text, reply.response_metadata.get("finish_reason") == "length"

    def new_summary(previous: str, fold: list[Turn]) -> str:
        """A checked summary of ``previous`` plus ``fold``, within the summary budget."""
        budget = deps.settings.summarisation.max_summary_tokens
        if previous:
            # A summary kept before the budget applied to every summary: bring it in first.
            previous = within_budget(fit_summary(previous, budget, deps.count_tokens))
        required = required_terms(fold) | summary_terms(previous)
        missing: list[str] = []
        for attempt in range(1, ATTEMPTS + 1):
            request = summary_request(previous, fold, missing)
            text, truncated = ask(request)
            candidate = tidy(text, truncated=truncated)
            problem = summary_problem(candidate, turns=fold, request=request, previous=previous)
            if problem is None:
                # Re-tokenised, a reply cut at max_new_tokens can be a token or two over.
                return within_budget(fit_summary(candidate, budget, deps.count_tokens))
            log.warning("summary attempt %d is unusable: %s", attempt, problem)
            # Ask again, naming the names and numbers (the user's, the summary's) it lacked.
            written = transcript(fold) + "\n" + previous
            missing = _as_written(missing_terms(required, candidate), written)
        log.warning("keeping the user's own sentences as the summary instead")
        return within_budget(
            extractive_summary(previous, fold, budget=budget, count=deps.count_tokens)
        )

    def within_budget(fitted: FittedSummary) -> str:
        """The fitted summary's text, with a warning when detail was given up for it."""
        if fitted.shortened or fitted.left_out:
            log.warning(
                "the summary is over its budget (summarisation.max_summary_tokens = %d): "
                "%d older sentence(s) shortened, %d older detail(s) left out; the full "
                "messages stay in the thread's history",
                deps.settings.summarisation.max_summary_tokens,
                fitted.shortened,
                fitted.left_out,
            )
        return fitted.text

    def summarise(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Fold the turns leaving the window into the summary, then warm the next prefix.

        Also moves the cursor and refreshes the user's facts from long-term memory.
        """
        fold = turns_to_fold(state, deps)
        if not fold:
            return {}
        summary = new_summary(state.summary, fold)
        cursor = fold[-1].last_id
        update: dict[str, Any] = {"summary": summary, "summarised_through": cursor}
        log.info(
            "summarised %d turn(s) into %d characters (names and numbers kept: %s)",
            len(fold),
            len(summary),
            ", ".join(sorted(required_terms(fold))) or "none",
        )
        profile = state.profile or ""
        store = runtime.store
        if store is not None and deps.recalls(runtime.context):
            # The prefix changes now anyway: bring in the facts learnt since it was built.
            try:
                user = deps.user_id(runtime.context)
                profile = deps.profile(store, user)
                update.update(profile=profile, profile_user=user)
            except Exception as exc:
                log.warning("long-term memory unavailable, keeping the old facts: %s", exc)
        system = system_text(deps.system_prompt, summary, profile, deps.memory_headings)
        kept = complete_turns(unsummarised(state.messages, cursor))
        limit = deps.settings.context.max_history_turns
        history = [m for turn in (kept[-limit:] if limit else []) for m in turn.messages]
        deps.prefill([SystemMessage(system), *history])
        return update

    return summarise


def make_needs_summary(
    deps: Deps,
) -> Callable[[State, Runtime[Context]], Literal["summarise", "__end__"]]:
    """Build the routing function after ``remember``."""

    def needs_summary(state: State, runtime: Runtime[Context]) -> Literal["summarise", "__end__"]:
        """Summarise only when the live history has grown past the thresholds.

        Never when the run's context says ``summarise=False`` (a throwaway thread: the
        summary would cost model calls and be deleted with it).
        """
        if runtime.context is not None and runtime.context.summarise is False:
            return "__end__"
        return "summarise" if turns_to_fold(state, deps) else "__end__"

    return needs_summary
