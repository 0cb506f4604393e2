"""Retrieval: find the passages of the user's documents that the new message is about."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime

from graph.context import Context
from graph.deps import ContextNode, Deps
from graph.messages import new_message
from graph.state import State
from tools.documents.retrieval import (
    clean_query,
    contextual_query,
    looks_like_followup,
    rewrite_request,
)
from tools.documents.store import DocumentStoreError
from tools.prompting import Turn, complete_turns, unsummarised
from tools.text import is_phatic

log = logging.getLogger("assistant.retrieve")


def make_retrieve(deps: Deps) -> ContextNode:
    """Build the ``retrieve`` node."""

    def standalone_query(history: list[Turn], message: str) -> str:
        """The message as a query that makes sense without the conversation."""
        if not history or not looks_like_followup(message):
            return message
        if not deps.settings.retrieval.rewrite_followups:
            return contextual_query(history, message)
        reply = deps.model.invoke(
            [
                SystemMessage(deps.prompt_file("rewrite.md")),
                HumanMessage(rewrite_request(history, message)),
            ],
            # A search query is bookkeeping, not an answer: keep it out of the token stream.
            config={"tags": [TAG_NOSTREAM]},
            temperature=0.0,
            do_sample=False,
            max_new_tokens=48,
        )
        query = clean_query(reply.text, fallback=contextual_query(history, message))
        log.info("follow-up %r searched as %r", message, query)
        return query

    def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        """Search the collection and keep the passages that score above the threshold."""
        enabled, collection = deps.retrieval(runtime.context)
        status: dict[str, Any] = {"status": "off", "query": None, "collection": collection}
        if not enabled:
            return {"sources": [], "retrieval": status}
        try:
            store = deps.documents(collection)
            if store.count() == 0:  # cheap: no embedding, no model call
                return {"sources": [], "retrieval": {**status, "status": "empty"}}
            message = new_message(state).text
            if is_phatic(message):  # "ok thanks": nothing to look up, no sources to cite
                return {"sources": [], "retrieval": {**status, "status": "skipped"}}
            history = complete_turns(unsummarised(state.messages[:-1], state.summarised_through))
            query = standalone_query(history, message)
            cfg = deps.settings.retrieval
            # A passage counts when it is close in meaning, or when it holds every keyword
            # of the query (a bare name or part number scores low in meaning).
            found = [
                p for p in store.search(query, cfg.k) if p.score >= cfg.min_score or p.keyword_match
            ]
        except DocumentStoreError as exc:
            # The answer goes on without the documents; the state and the log say why.
            log.warning("retrieval failed, answering without documents: %s", exc)
            return {"sources": [], "retrieval": {**status, "status": "error", "error": str(exc)}}
        log.info("retrieval: %d passage(s) for %r", len(found), query)
        return {
            "sources": [p.to_dict() for p in found],
            "retrieval": {
                **status,
                "status": "found" if found else "none_relevant",
                "query": query,
            },
        }

    return retrieve
