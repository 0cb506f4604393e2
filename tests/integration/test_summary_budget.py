"""The running summary on the real small model (SmolLM2-135M): within its budget after
every fold, and a later summary keeps the earlier one's names and numbers or counts what
it left out; a short message after many folds still gets an answer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.settings import Settings
from tests.conftest import thread
from tools.memory.facts import key_terms, missing_terms
from tools.memory.summaries import details_left_out, summary_terms
from tools.models import get_chat_model

pytestmark = pytest.mark.integration

FACTS = [
    "Hi, I'm Priya and my locker code is 4817.",
    "My dog Biscuit is 7 years old.",
    "My sister Ingrid lives in Bergen.",
    "I work as a nurse at Haukeland.",
    "My employee number is 880214.",
    "My cat Miso is 4 years old.",
]


def test_the_summary_stays_in_budget_and_keeps_or_counts_earlier_facts(
    llama_settings: Callable[..., Settings],
) -> None:
    budget = 40
    settings = llama_settings(
        generation={"max_new_tokens": 12},
        summarisation={"max_turns": 2, "keep_turns": 1, "max_summary_tokens": budget},
    )
    model = get_chat_model(settings)
    graph = build_graph(settings, checkpointer=InMemorySaver(), model=model)
    previous = ""
    summaries = 0
    for text in [*FACTS, "hi"]:
        state = graph.invoke({"messages": [("user", text)]}, thread())
        summary = state["summary"]
        assert model.get_num_tokens(summary) <= budget, summary
        if summary != previous:
            summaries += 1
            # what the earlier summary held is still there, or counted as left out
            lost = missing_terms(summary_terms(previous), summary)
            counted = details_left_out(summary) - details_left_out(previous)
            assert len(lost) <= counted, (previous, summary)
        previous = summary
    assert summaries >= 3
    assert state["messages"][-1].type == "ai" and state["messages"][-1].text.strip()
    # the newest folded message's names and numbers are all in the summary
    cursor = [m.id for m in state["messages"]].index(state["summarised_through"])
    newest = [m.text for m in state["messages"][:cursor] if m.type == "human"][-1]
    assert not missing_terms(key_terms(newest), state["summary"]), (newest, state["summary"])
