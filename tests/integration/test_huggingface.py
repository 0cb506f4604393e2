"""The huggingface backend on a real local transformers directory (SmolLM2 from its GGUF)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.settings import Settings, load_settings
from tests.conftest import thread
from tests.integration.conftest import MODEL_CACHE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def smollm2_hf(smollm2: Path) -> Path:
    """A transformers directory made once from the shipped GGUF (no hub involved)."""
    from tools.models.huggingface import export_gguf_to_transformers

    out = MODEL_CACHE / "smollm2-135m-hf"
    if not (out / "model.safetensors").is_file():
        export_gguf_to_transformers(smollm2, out)
    return out


@pytest.fixture
def hf_settings(smollm2_hf: Path) -> Callable[..., Settings]:
    def make() -> Settings:
        return load_settings(
            model={"backend": "huggingface", "hf_model_dir": str(smollm2_hf), "n_ctx": 2048},
            generation={"do_sample": False, "max_new_tokens": 12},
            context={"max_prompt_tokens": 1024},
        )

    return make


def test_graph_runs_sync_and_streams(hf_settings: Callable[..., Settings]) -> None:
    graph = build_graph(hf_settings(), checkpointer=InMemorySaver())
    chunks = [
        chunk.text
        for chunk, meta in graph.stream(
            {"messages": [("user", "Say hello.")]}, thread(), stream_mode="messages"
        )
        if isinstance(chunk, AIMessageChunk) and meta["langgraph_node"] == "generate"
    ]
    assert len([c for c in chunks if c]) > 1
    state = graph.get_state(thread()).values
    assert state["messages"][-1].text.strip()
    assert state["prompt_tokens"] > 0


def test_graph_runs_async(hf_settings: Callable[..., Settings]) -> None:
    graph = build_graph(hf_settings(), checkpointer=InMemorySaver())

    async def turn() -> dict[str, Any]:
        result: dict[str, Any] = await graph.ainvoke(
            {"messages": [("user", "Explain like I'm five: what is a cloud?")]}, thread("a")
        )
        return result

    state = asyncio.run(turn())
    assert state["concept"] == "explain_simply"
    assert state["messages"][-1].text.strip()


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    from tools.models import ModelLoadError, get_chat_model

    settings = load_settings(model={"backend": "huggingface", "hf_model_dir": str(tmp_path / "x")})
    with pytest.raises(ModelLoadError, match="hf_model_dir"):
        get_chat_model(settings)
