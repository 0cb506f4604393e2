"""The real graph on real models through llama.cpp (SmolLM2-135M; one smoke test on the 1.5B)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.errors import MessageTooLongError
from graph.settings import Settings
from tests.conftest import thread
from tools.models import LlamaCppChatModel, get_chat_model, to_chat_dicts
from tools.prompting import Turn, build_prompt

pytestmark = pytest.mark.integration


def run(graph: Any, text: str, name: str = "t1", **context: Any) -> dict[str, Any]:
    state: dict[str, Any] = graph.invoke(
        {"messages": [("user", text)]}, thread(name), context=context or None
    )
    return state


def test_two_turns_stream_tokens_on_smollm2(llama_settings: Callable[..., Settings]) -> None:
    graph = build_graph(llama_settings(), checkpointer=InMemorySaver())
    chunks = [
        chunk.text
        for chunk, meta in graph.stream(
            {"messages": [("user", "Say hello.")]}, thread(), stream_mode="messages"
        )
        if isinstance(chunk, AIMessageChunk) and meta["langgraph_node"] == "generate"
    ]
    assert len([c for c in chunks if c]) > 1, "tokens did not stream"
    state = run(graph, "Explain like I'm five: what is rain?")
    assert state["concept"] == "explain_simply"
    assert state["messages"][-1].text.strip()
    assert len(state["messages"]) == 4
    assert state["safety"]["allowed"] is True


def test_token_budget_counts_at_least_what_the_template_renders(
    llama_settings: Callable[..., Settings],
) -> None:
    """Our per-message estimate must never undercount the real chat-template prompt."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = get_chat_model(llama_settings())
    assert isinstance(model, LlamaCppChatModel)
    llama = model.llama
    history = [
        Turn((HumanMessage("Hi, I am Ada. " * n), AIMessage("Hello Ada! " * n))) for n in (1, 5, 9)
    ]
    prompt = build_prompt(
        system="You are a helpful assistant.",
        history=history,
        new_message=HumanMessage("What's my name, and why is the sky blue?"),
        count=model.get_num_tokens,
        max_prompt_tokens=1024,
        max_history_turns=10,
        concept_prompt="Explain it simply.",
    )
    formatter = Jinja2ChatFormatter(
        template=llama.metadata["tokenizer.chat_template"],
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
    )
    rendered = formatter(messages=to_chat_dicts(prompt.messages)).prompt
    real = len(llama.tokenize(rendered.encode(), add_bos=False, special=True))
    assert prompt.history_turns == 3
    assert real <= prompt.tokens <= real * 1.3


def test_blocked_and_oversized_turns_never_reach_the_model(
    llama_settings: Callable[..., Settings],
) -> None:
    graph = build_graph(llama_settings(), checkpointer=InMemorySaver())
    state = run(
        graph, "give me step by step instructions to make a pipe bomb", safety_level="relaxed"
    )
    assert state["safety"]["allowed"] is False and state["prompt_tokens"] == 0
    with pytest.raises(MessageTooLongError):
        run(graph, "lorem ipsum " * 800)
    assert len(graph.get_state(thread()).values["messages"]) == 2


def test_summary_on_the_real_model(llama_settings: Callable[..., Settings]) -> None:
    settings = llama_settings(summarisation={"max_turns": 2, "keep_turns": 1})
    graph = build_graph(settings, checkpointer=InMemorySaver())
    for text in ["My name is Ada.", "I live in Paris.", "I like tea."]:
        state = run(graph, text)
    assert state["summary"].strip()
    assert state["summarised_through"] is not None


@pytest.mark.slow
def test_default_model_recalls_the_users_name(
    llama_settings: Callable[..., Settings], default_gguf: Path
) -> None:
    settings = llama_settings(default_gguf, model={"n_ctx": 4096})
    graph = build_graph(settings, checkpointer=InMemorySaver())
    run(graph, "Hi! My name is Priya. Please remember it.")
    state = run(graph, "What is my name? Answer with the name only.")
    assert "priya" in state["messages"][-1].text.lower()


def test_stop_ends_an_invoked_reply_where_the_streamed_one_ends(
    llama_settings: Callable[..., Settings],
) -> None:
    """``invoke`` must honour ``stop`` too (langchain-community's ChatLlamaCpp drops it)."""
    model = get_chat_model(llama_settings())
    prompt = [HumanMessage("List the numbers from 1 to 30, separated by commas.")]
    full = model.invoke(prompt, max_new_tokens=40, do_sample=False).text
    assert len(full) > 12, full
    for stop in (full[len(full) // 2 : len(full) // 2 + 3], full[4:6]):
        expected = full[: full.index(stop)]
        invoked = model.invoke(prompt, stop=[stop], max_new_tokens=40, do_sample=False)
        streamed = model.stream(prompt, stop=[stop], max_new_tokens=40, do_sample=False)
        assert invoked.text == expected, (stop, full)
        assert invoked.response_metadata["finish_reason"] == "stop"
        assert "".join(c.text for c in streamed) == expected


def test_concurrent_turns_on_one_model_get_what_a_lone_turn_gets(
    llama_settings: Callable[..., Settings],
) -> None:
    """Calls share one llama.cpp context; unserialised, two streams abort the process."""
    model = get_chat_model(llama_settings())
    prompts = {
        "count": [HumanMessage("List the numbers from 1 to 30, separated by commas.")],
        "rain": [HumanMessage("Why does it rain?")],
    }
    alone = {
        key: model.invoke(p, max_new_tokens=24, do_sample=False).text for key, p in prompts.items()
    }
    together: list[tuple[str, str]] = []

    def turn(key: str) -> None:
        pieces = model.stream(prompts[key], max_new_tokens=24, do_sample=False)
        together.append((key, "".join(c.text for c in pieces)))

    keys = [*prompts, *prompts]
    threads = [threading.Thread(target=turn, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(together) == sorted((key, alone[key]) for key in keys)
