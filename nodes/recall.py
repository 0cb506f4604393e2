"""Recall: bring back what this user said before, from long-term memory, before the reply.

Two things come back (the memory-agent template's pattern: the store of the run, the
namespace of ``runtime.context.user_id``):

- the user's facts ("profile"), loaded at a thread's first turn and kept in the state, so
  the system prompt stays the same from turn to turn (``summarise`` refreshes it); loaded
  again when another user writes in the thread, whose prompt gets their own facts only;
- past turns of this user whose message is close in meaning to the new one (all-MiniLM
  cosine similarity of at least ``long_term.min_score``), unless they are still in the
  live history. Nothing is searched (nor embedded) while the user has no past turns.

A run with ``context={"recall": False}`` (the API's anonymous requests) brings nothing back.

Long-term memory failing (a store that went away) never fails the turn: it is logged and
the reply goes on without it.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.messages import new_message
from graph.state import State
from tools.memory.long_term import has_memories, search_memories
from tools.prompting import complete_turns, unsummarised

log = logging.getLogger("assistant.memory")


def live_turn_keys(state: State) -> list[str]:
    """Store keys of the turns still in the live history (they are in the prompt already)."""
    live = complete_turns(unsummarised(state.messages[:-1], state.summarised_through))
    return [f"turn-{turn.messages[0].id}" for turn in live if turn.messages[0].id]


def make_recall(deps: Deps) -> ContextNode:
    """Build the ``recall`` node."""

    def recall(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Load the user's facts (a thread's first turn) and the past turns recalled."""
        store = runtime.store
        cfg = deps.settings.long_term
        update: dict[str, Any] = {"memories": []}
        if store is None or not deps.recalls(runtime.context):
            # Nothing of anyone's may reach this prompt, not even facts loaded earlier.
            if state.profile == "" and state.profile_user is None:
                return update
            return {**update, "profile": "", "profile_user": None}
        user = deps.user_id(runtime.context)
        try:
            if state.profile is None or state.profile_user != user:
                update["profile"] = deps.profile(store, user)
                update["profile_user"] = user
            if cfg.turns and cfg.k and has_memories(store, user, "turns"):
                found = search_memories(
                    store,
                    user,
                    new_message(state).text,
                    kinds=("turns",),
                    limit=cfg.k,
                    min_score=cfg.min_score,
                    exclude=live_turn_keys(state),
                )
                update["memories"] = [m.as_dict() for m in found]
        except Exception as exc:  # any store failure: answer without long-term memory
            log.warning("long-term memory unavailable, answering without it: %s", exc)
            if state.profile_user != user:  # never another user's facts
                update.update(profile="", profile_user=None)
            update.setdefault("profile", state.profile or "")
            return update
        log.info(
            "recall for user %s: %d past turn(s)%s",
            user,
            len(update["memories"]),
            ", profile loaded" if "profile" in update else "",
        )
        return update

    return recall
