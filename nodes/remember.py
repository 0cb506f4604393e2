"""Remember: keep the turn in the user's long-term memory, after the reply.

What the user said about themselves becomes facts (a cheap detector, no model call, see
:mod:`tools.memory.facts`), and the turn itself is kept, embedded by its message, so a
later thread can find it by meaning. The reply kept is the one the user saw (masked).
A run with ``context={"remember": False}`` keeps nothing; refused turns never get here.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.state import State
from tools.memory.long_term import remember_turn

log = logging.getLogger("assistant.memory")


def make_remember(deps: Deps) -> ContextNode:
    """Build the ``remember`` node."""

    def remember(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Store the facts and the turn; change nothing in the thread."""
        store = runtime.store
        if store is None or not deps.remembers(runtime.context) or len(state.messages) < 2:
            return {}
        question, reply = state.messages[-2], state.messages[-1]
        if question.type != "human" or reply.type != "ai":
            return {}
        cfg = deps.settings.long_term
        thread_id = get_config().get("configurable", {}).get("thread_id")
        user = deps.user_id(runtime.context)
        try:
            kept = remember_turn(
                store,
                user,
                message=question.text,
                reply=reply.text,
                thread_id=None if thread_id is None else str(thread_id),
                message_id=question.id,
                facts=cfg.facts,
                turns=cfg.turns,
            )
        except Exception as exc:  # the reply is already out: memory failing must not undo it
            log.warning("could not keep the turn in long-term memory: %s", exc)
            return {}
        facts = sum(m.kind == "facts" for m in kept)
        log.info("remembered for user %s: %d fact(s), %d turn(s)", user, facts, len(kept) - facts)
        return {}

    return remember
