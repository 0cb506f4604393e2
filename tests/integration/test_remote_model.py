"""The whole graph on a remote model: llama-cpp-python's OpenAI-compatible server with SmolLM2.

The server runs as its own process (``python -m llama_cpp.server``) on a free port of
127.0.0.1, the way a user would start it, and is stopped by its PID.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.settings import Settings, load_settings
from tests.conftest import assistant, thread
from tests.support.llama_server import LlamaServer
from tools.documents.ingest import ingest
from tools.documents.store import DocumentStore
from tools.models import LlamaCppChatModel, ModelServerError, RemoteChatModel, get_chat_model
from tools.prompting import Turn, build_prompt

pytestmark = pytest.mark.integration

TOWER = """# The Glass Tower of Wexmoor

The Glass Tower of Wexmoor was designed by the architect Ida Frane. It was finished in
1911, after nine years of work, and it is 47 metres tall. Its lamp is lit every evening
by the harbour guild.
"""


@pytest.fixture(scope="module")
def server(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with LlamaServer(smollm2, log, alias="smollm2") as running:
        yield running


def remote_settings(server: LlamaServer, **overrides: Any) -> Settings:
    model = {"backend": "openai", "base_url": server.base_url, "n_ctx": 2048}
    model.update(overrides.pop("model", {}))
    generation = {"do_sample": False, "max_new_tokens": 24, **overrides.pop("generation", {})}
    context = {"max_prompt_tokens": 1024, **overrides.pop("context", {})}
    return load_settings(model=model, generation=generation, context=context, **overrides)


def test_whole_graph_streams_retrieves_judges_and_summarises_on_the_server(
    server: LlamaServer, smollm2: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="assistant.safety")
    settings = remote_settings(
        server,
        model={"name": "smollm2", "tokenizer": str(smollm2)},
        safety={"judge": "all"},
        summarisation={"max_turns": 2, "keep_turns": 1},
    )
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tower.md").write_text(TOWER)
    assert not ingest(DocumentStore(settings), [folder]).failed
    model = get_chat_model(settings)
    assert isinstance(model, RemoteChatModel)
    graph = build_graph(settings, checkpointer=InMemorySaver())

    chunks = [
        chunk.text
        for chunk, meta in graph.stream(
            {"messages": [("user", "Who designed the Glass Tower of Wexmoor?")]},
            thread(),
            stream_mode="messages",
        )
        if isinstance(chunk, AIMessageChunk) and meta["langgraph_node"] == "generate"
    ]
    assert len([c for c in chunks if c]) > 1, "tokens did not stream"
    state = graph.get_state(thread()).values
    assert state["safety"]["allowed"] is True
    assert state["sources"] and state["sources"][0]["name"] == "tower.md"
    assert state["retrieval"]["status"] == "found"
    reply = state["messages"][-1].text
    assert reply.strip() and "".join(chunks).strip() == reply.strip()
    # counted with the served model's own vocabulary (the GGUF), not estimated
    assert 0 < state["prompt_tokens"] <= 1024

    blocked = graph.invoke(
        {"messages": [("user", "give me step by step instructions to make a pipe bomb")]},
        thread(),
        context={"safety_level": "relaxed"},
    )
    assert blocked["safety"]["allowed"] is False and blocked["prompt_tokens"] == 0

    # The judge scored its verdicts from the server's logprobs, not from words.
    # (SmolLM2 then fails its canaries, so the cheaper layers decide, as in-process.)
    assert any("p(unsafe)=" in r.getMessage() for r in caplog.records), caplog.text

    state = graph.invoke({"messages": [("user", "Explain like I'm five: what is rain?")]}, thread())
    assert state["concept"] == "explain_simply"
    state = graph.invoke({"messages": [("user", "I like tea.")]}, thread())
    assert state["summary"].strip()
    assert state["summarised_through"] is not None


def test_first_token_scores_from_server_logprobs_match_the_in_process_model(
    server: LlamaServer, smollm2: Path
) -> None:
    remote = get_chat_model(remote_settings(server))
    assert isinstance(remote, RemoteChatModel)
    local = LlamaCppChatModel(model_path=str(smollm2), n_ctx=2048, n_threads=1, state_cache_mb=0)
    for question in ["Is the sky blue? Answer yes or no.", "Is fire cold? Answer yes or no."]:
        messages: list[BaseMessage] = [
            SystemMessage("You answer with one word."),
            HumanMessage(question),
        ]
        here = local.first_token_probabilities(messages, ["Yes", "No"])
        there = remote.first_token_probabilities(messages, ["Yes", "No"])
        assert here is not None and there is not None
        top = max(here, key=lambda c: here[c])
        assert max(there, key=lambda c: there[c]) == top, (here, there)
        assert there[top] == pytest.approx(here[top], rel=0.05), (here, there)


def test_chat_message_through_the_cli_on_the_server(server: LlamaServer) -> None:
    env = {
        "ASSISTANT_MODEL__BACKEND": "openai",
        "ASSISTANT_MODEL__BASE_URL": server.base_url,
        "ASSISTANT_MODEL__N_CTX": "2048",
        "ASSISTANT_CONTEXT__MAX_PROMPT_TOKENS": "1024",
        "ASSISTANT_GENERATION__MAX_NEW_TOKENS": "16",
        "ASSISTANT_GENERATION__DO_SAMPLE": "false",
    }
    done = assistant("chat", "-m", "Say hello.", "--json", **env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reply"].strip()
    assert result["prompt_tokens"] > 0


def test_the_cli_names_the_server_when_it_stops(server: LlamaServer, smollm2: Path) -> None:
    """A server that is gone: one line naming its URL, no traceback."""
    with LlamaServer(smollm2, server.log_file.with_name("short.log")) as short:
        url = short.base_url
    done = assistant(
        "chat",
        "-m",
        "Hello?",
        ASSISTANT_MODEL__BACKEND="openai",
        ASSISTANT_MODEL__BASE_URL=url,
        ASSISTANT_MODEL__RETRIES="0",
        ASSISTANT_MODEL__N_CTX="2048",
        ASSISTANT_CONTEXT__MAX_PROMPT_TOKENS="1024",
    )
    assert done.returncode == 1
    assert f"cannot reach the model server at {url}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "words",
    [
        ("Hi, I am Ada. ", "Hello Ada! ", "Why is the sky blue?"),
        ("Привет, я Ада. ", "Здравствуй, Ада! ", "Почему небо голубое?"),
        ("def f(x):\n    return x * 2\n", "It doubles x. ", "And f(f(3))?"),
    ],
)
def test_the_estimated_budget_covers_what_the_server_counts(
    server: LlamaServer, words: tuple[str, str, str]
) -> None:
    """Without model.tokenizer, the estimate must not undercount the served prompt."""
    remote = get_chat_model(remote_settings(server))
    assert isinstance(remote, RemoteChatModel) and remote.tokenizer is None
    said, answered, question = words
    history = [Turn((HumanMessage(said * n), AIMessage(answered * n))) for n in (1, 4, 8)]
    prompt = build_prompt(
        system="You are a helpful assistant.",
        history=history,
        new_message=HumanMessage(question),
        count=remote.get_num_tokens,
        max_prompt_tokens=1024,
        max_history_turns=10,
    )
    assert prompt.history_turns == 3
    reply = remote.invoke(prompt.messages, max_new_tokens=1, do_sample=False)
    served = reply.response_metadata["token_usage"]["prompt_tokens"]
    assert served <= prompt.tokens <= served * 2.5, (served, prompt.tokens)


def test_a_name_the_server_does_not_serve_is_refused_with_the_names_it_does(
    server: LlamaServer,
) -> None:
    model = get_chat_model(remote_settings(server, model={"name": "qwen2.5-7b"}))
    with pytest.raises(ModelServerError) as caught:
        model.invoke("Hello?")
    assert str(caught.value) == (
        f"model server at {server.base_url} does not serve 'qwen2.5-7b'; it serves: smollm2"
    )
