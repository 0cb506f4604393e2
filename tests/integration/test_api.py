"""The OpenAI-compatible API as users run it: ``assistant serve`` in its own process, and
the same routes mounted into ``langgraph dev`` (langgraph.json ``http.app``), driven by
the official ``openai`` client.

Each server starts on a free port of 127.0.0.1 and is stopped by its process group. A
thread started on ``assistant serve`` continues on ``langgraph dev`` (its /v1 routes and
its own LangGraph API) because both keep threads in the same Redis.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langgraph_sdk import get_sync_client

from graph.settings import Settings
from tests.integration.test_dev_server import GRAPH_ID, dev_server  # noqa: F401  (fixture)
from tests.support import assistant_serve
from tests.support import dev_server as dev
from tests.support.assistant_serve import REPO_ROOT, Served
from tests.support.processes import short_replies_env
from tests.support.redis_server import RedisServer
from tools.memory import open_checkpointer

pytestmark = pytest.mark.integration

START_TIMEOUT = 120.0
KEY = "test-key-0123456789"
"""An unbound key: it may name any user (a front end that signs its own users in)."""
ADA_KEY = "ada-key-0123456789abcdef"
"""A key bound to the user ada."""


def serve_env(data_dir: Path, gguf: Path, **extra: str) -> dict[str, str]:
    """``assistant serve`` on llama.cpp with ``gguf``: short greedy replies; an unbound key
    and one bound to ada."""
    keys = json.dumps([KEY, {"key": ADA_KEY, "user": "ada"}])
    return short_replies_env(data_dir, gguf, **{"ASSISTANT_API__KEYS": keys, **extra})


def serve(directory: Path, env: dict[str, str]) -> contextlib.AbstractContextManager[Served]:
    """``assistant serve`` with ``env``, its log in ``directory``, until the block ends."""
    return assistant_serve.serve(env, directory / "serve.log", KEY, START_TIMEOUT)


def stream_reply(client: openai.OpenAI, text: str, **kwargs: Any) -> tuple[list[str], Any]:
    """Stream one reply: the content pieces and the last chunk."""
    pieces: list[str] = []
    last = None
    for chunk in client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": text}],
        stream=True,
        **kwargs,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.choices and chunk.choices[0].finish_reason:
            last = chunk
    return pieces, last


@pytest.fixture
def served_smollm2(tmp_path: Path, smollm2: Path) -> Iterator[Served]:
    with serve(tmp_path, serve_env(tmp_path / "data", smollm2)) as served:
        yield served


def test_the_openai_client_streams_and_continues_a_thread_on_smollm2(
    served_smollm2: Served,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = served_smollm2.client()
    thread = {"X-Thread-Id": "api-thread-1"}
    pieces, last = stream_reply(
        client, "My name is Ada. Nice to meet you!", extra_headers=thread, user="ada"
    )
    assert len(pieces) > 1, f"tokens did not stream: {pieces}"
    assert last is not None and last.choices[0].finish_reason in ("stop", "length")
    extension = last.model_extra["assistant"]
    assert extension["thread_id"] == "api-thread-1"
    assert extension["safety"]["allowed"] is True

    second = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "What is my name?"}],
        extra_headers=thread,
        user="ada",
        max_tokens=2,
    )
    assert second.object == "chat.completion"
    assert second.choices[0].message.content
    assert second.choices[0].finish_reason == "length"  # llama.cpp says why it ended
    assert second.usage is not None and second.usage.prompt_tokens > 0

    # The thread is in the server's SQLite file, in order.
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    with open_checkpointer(make_settings()) as saver:
        assert saver is not None
        latest = saver.get_tuple({"configurable": {"thread_id": "api-thread-1"}})
        assert latest is not None
        messages = latest.checkpoint["channel_values"]["messages"]
    assert [(m.type, m.text) for m in messages][::2] == [
        ("human", "My name is Ada. Nice to meet you!"),
        ("human", "What is my name?"),
    ]
    assert [m.text for m in messages][1] == "".join(pieces)


def test_refusals_errors_and_keys_through_the_openai_client(served_smollm2: Served) -> None:
    client = served_smollm2.client()
    refused = client.chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": "this is shit"}],
        extra_body={"safety_level": "strict"},
    )
    assert refused.choices[0].message.content.startswith("Sorry, I can't help with that.")
    assert refused.model_extra["assistant"]["safety"]["category"] == "profanity"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"safety_level": "paranoid"},
        )
    assert bad.value.body["param"] == "safety_level"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        served_smollm2.client("wrong-key").models.list()
    assert [m.id for m in client.models.list()] == ["assistant"]


def test_a_key_bound_to_a_user_acts_as_that_user_only(served_smollm2: Served) -> None:
    ada = served_smollm2.client(ADA_KEY)
    thread = {"X-Thread-Id": "ada-bound-1"}

    def ask(client: openai.OpenAI, **kwargs: Any) -> Any:
        return client.chat.completions.create(
            model="assistant",
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=2,
            extra_headers=thread,
            **kwargs,
        )

    assert ask(ada).choices[0].message.content  # no 'user': the key's user, ada
    with pytest.raises(openai.PermissionDeniedError) as denied:
        ask(ada, user="bob")
    assert denied.value.status_code == 403
    assert denied.value.body["code"] == "wrong_user"  # type: ignore[index]
    assert ADA_KEY not in str(denied.value.body)
    gateway = served_smollm2.client()
    with pytest.raises(openai.NotFoundError):  # the thread is ada's
        ask(gateway, user="bob")
    assert ask(gateway, user="ada").choices[0].message.content  # the gateway may name ada
    assert ADA_KEY not in served_smollm2.log()
    assert "2 API key(s), 1 bound to a user" in served_smollm2.log()


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path, smollm2: Path) -> None:
    env = serve_env(tmp_path, smollm2)
    del env["ASSISTANT_API__KEYS"]
    done = subprocess.run(
        [sys.executable, "-m", "apps.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in done.stderr


@pytest.fixture
def default_dev_server(
    tmp_path_factory: pytest.TempPathFactory, default_gguf: Path, redis_server: RedisServer
) -> Iterator[dev.DevServer]:
    """``langgraph dev`` on the default model (the same set-up as ``dev_server``)."""
    directory = tmp_path_factory.mktemp("default-dev-server")
    env = dev.server_env(
        directory,
        default_gguf,
        redis_server.url,
        ASSISTANT_MODEL__N_CTX="4096",
        ASSISTANT_GENERATION__MAX_NEW_TOKENS="12",
    )
    with dev.running(directory, env) as server:
        yield server


def test_a_thread_continues_across_assistant_serve_and_langgraph_dev(
    dev_server: dev.DevServer,  # noqa: F811
    tmp_path: Path,
    smollm2: Path,
) -> None:
    continue_across_servers(dev_server, tmp_path, smollm2)


def test_the_default_model_continues_a_thread_across_both_servers(
    default_dev_server: dev.DevServer, tmp_path: Path, default_gguf: Path
) -> None:
    continue_across_servers(
        default_dev_server,
        tmp_path,
        default_gguf,
        ASSISTANT_MODEL__N_CTX="4096",
        ASSISTANT_GENERATION__MAX_NEW_TOKENS="12",
    )


def continue_across_servers(
    dev_server: dev.DevServer,  # noqa: F811
    tmp_path: Path,
    gguf: Path,
    **extra: str,
) -> None:
    """Turn 1 on assistant serve, turn 2 on the dev server's /v1, turn 3 on its own API."""
    thread_id = str(uuid.uuid4())  # the LangGraph API takes only UUIDs
    env = serve_env(tmp_path / "data", gguf, REDIS_URL=dev_server.redis_url, **extra)
    with dev_server.log_on_failure(), serve(tmp_path, env) as served:
        # 1. on assistant serve
        first, _ = stream_reply(
            served.client(),
            "My name is Ada. Nice to meet you!",
            extra_headers={"X-Thread-Id": thread_id},
        )
        assert len(first) > 1
        # 2. on the dev server's /v1 (the same routes, mounted through langgraph.json)
        dev_openai = openai.OpenAI(
            base_url=f"{dev_server.url}/v1", api_key="unused", max_retries=0, timeout=600
        )
        assert [m.id for m in dev_openai.models.list()] == ["assistant"]
        second, last = stream_reply(
            dev_openai, "What is my name?", extra_headers={"X-Thread-Id": thread_id}
        )
        assert second, "no reply streamed from the dev server"
        assert last is not None and last.model_extra["assistant"]["thread_id"] == thread_id
    # 3. on the dev server's own LangGraph API
    sdk = get_sync_client(url=dev_server.url, api_key=None, timeout=120.0)
    with dev_server.log_on_failure():
        sdk.threads.create(thread_id=thread_id, graph_id=GRAPH_ID, if_exists="do_nothing")
        state = sdk.runs.wait(
            thread_id,
            GRAPH_ID,
            input={"messages": [{"role": "user", "content": "Thanks!"}]},
            context={"max_new_tokens": 4},
        )
        assert isinstance(state, dict)
        kept = [(m["type"], m["content"]) for m in state["messages"]]
    sdk.close()
    assert [kind for kind, _ in kept] == ["human", "ai"] * 3
    assert [text for kind, text in kept if kind == "human"] == [
        "My name is Ada. Nice to meet you!",
        "What is my name?",
        "Thanks!",
    ]
    assert kept[1][1] == "".join(first)
    assert kept[3][1] == "".join(second)


def test_the_default_model_streams_through_the_openai_client(
    tmp_path: Path, default_gguf: Path
) -> None:
    env = serve_env(
        tmp_path / "data",
        default_gguf,
        ASSISTANT_MODEL__N_CTX="4096",
        ASSISTANT_GENERATION__MAX_NEW_TOKENS="8",
    )
    with serve(tmp_path, env) as served:
        client = served.client()
        pieces, last = stream_reply(
            client, "Name three capitals of European countries.", extra_headers={"X-Thread-Id": "d"}
        )
        assert len(pieces) > 1, pieces
        again, _ = stream_reply(
            client, "Which of them is the capital of France?", extra_headers={"X-Thread-Id": "d"}
        )
        assert "paris" in "".join(again).lower(), again
        assert last is not None and last.model_extra["assistant"]["safety"]["allowed"] is True
