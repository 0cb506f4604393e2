"""The assistant's turn, as a LangGraph state machine.

check_input ─┬─ blocked ─> refuse ─> END
             ├─ invalid ─> reject (raises a clear error; the thread is unchanged)
             └─ allowed ─> detect_alias ─> retrieve ─> recall ─> generate
generate ─┬─ the message cannot fit the prompt budget ─> reject
          └─ otherwise ─> check_output ─> remember
remember ─┬─ history too long ─> summarise ─> END
          └─ otherwise ─> END
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer

from graph.context import Context
from graph.deps import Deps
from graph.settings import Settings, get_settings
from graph.state import InputState, State
from nodes.check_input import make_check_input, make_reject, route_after_check
from nodes.check_output import make_check_output
from nodes.detect_alias import make_detect_alias
from nodes.generate import make_generate, route_after_generate
from nodes.recall import make_recall
from nodes.refuse import make_refuse
from nodes.remember import make_remember
from nodes.retrieve import make_retrieve
from nodes.summarise import make_needs_summary, make_summarise


def build_graph(
    settings: Settings | None = None,
    *,
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    model: BaseChatModel | None = None,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the assistant graph.

    Args:
        settings: Settings to use; None reads them from the file, ``.env`` and environment.
        checkpointer: Where threads are kept between turns (None: each call stands alone,
            or the LangGraph server brings its own).
        store: Long-term memory per user (a LangGraph store with a vector index, see
            ``tools.memory.open_memory``); None: nothing is remembered across threads, or
            the LangGraph server brings its own.
        model: A chat model to use instead of the configured backend (tests, notebooks).

    Returns:
        The compiled graph; invoke it with ``{"messages": [...]}`` and
        ``{"configurable": {"thread_id": ...}}``, and optionally ``context={...}``
        (``user_id`` says whose long-term memories the run uses).
    """
    deps = Deps(settings or get_settings(), model_override=model)
    builder = StateGraph(State, context_schema=Context, input_schema=InputState)

    builder.add_node("check_input", make_check_input(deps))
    builder.add_node("refuse", make_refuse(deps))
    builder.add_node("reject", make_reject(deps))
    builder.add_node("detect_alias", make_detect_alias(deps))
    builder.add_node("retrieve", make_retrieve(deps))
    builder.add_node("recall", make_recall(deps))
    builder.add_node("generate", make_generate(deps))
    builder.add_node("check_output", make_check_output(deps))
    builder.add_node("remember", make_remember(deps))
    builder.add_node("summarise", make_summarise(deps))

    builder.add_edge(START, "check_input")
    builder.add_conditional_edges("check_input", route_after_check)
    builder.add_edge("refuse", END)
    builder.add_edge("reject", END)
    builder.add_edge("detect_alias", "retrieve")
    # Retrieval skips itself (no store work) when it is off or the collection is empty.
    builder.add_edge("retrieve", "recall")
    # Long-term memory: the user's facts and the past turns the message is about.
    builder.add_edge("recall", "generate")
    # The prompt budget is settled in generate, once every part is known.
    builder.add_conditional_edges("generate", route_after_generate)
    # Memories are written after the reply the user saw (masked), never for a refusal.
    builder.add_edge("check_output", "remember")
    # Only a long history is summarised; most turns end right after remembering.
    builder.add_conditional_edges("remember", make_needs_summary(deps))
    builder.add_edge("summarise", END)

    return builder.compile(checkpointer=checkpointer, store=store, name="assistant")
