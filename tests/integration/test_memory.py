"""Memory on real Redis (valkey + RediSearch/RedisJSON) and real SQLite files.

Restarts are real processes (the CLI); Redis dying is a SIGKILL of the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from graph import build_graph
from graph.settings import Settings
from tests.conftest import assistant, thread
from tools.memory import (
    FallbackSaver,
    MemoryBackendError,
    aopen_checkpointer,
    list_threads,
    open_checkpointer,
)
from tools.models import FakeChatModel

pytestmark = pytest.mark.integration


def say(graph: Any, text: str, name: str = "t1") -> dict[str, Any]:
    state: dict[str, Any] = graph.invoke({"messages": [("user", text)]}, thread(name))
    return state


def texts(state: dict[str, Any]) -> list[str]:
    return [m.text for m in state["messages"]]


@pytest.fixture
def redis_settings(
    make_settings: Callable[..., Settings], redis_url: str
) -> Callable[..., Settings]:
    def make(**memory: Any) -> Settings:
        return make_settings(memory={"backend": "redis", "redis_url": redis_url, **memory})

    return make


def test_thread_continues_across_process_restarts_on_redis(redis_url: str) -> None:
    first = assistant(
        "chat", "--thread", "T", "-m", "My name is Ada.", "--json", REDIS_URL=redis_url
    )
    assert first.returncode == 0, first.stderr
    assert "WARNING" not in first.stderr, first.stderr
    second = assistant(
        "chat", "--thread", "T", "-m", "What is my name?", "--json", REDIS_URL=redis_url
    )
    assert json.loads(second.stdout)["messages"] == 4, second.stderr
    shown = json.loads(assistant("threads", "show", "T", "--json", REDIS_URL=redis_url).stdout)
    assert [m["content"] for m in shown["messages"][::2]] == ["My name is Ada.", "What is my name?"]
    listed = json.loads(assistant("threads", "list", "--json", REDIS_URL=redis_url).stdout)
    assert [t["thread_id"] for t in listed] == ["T"]
    assert assistant("threads", "delete", "T", REDIS_URL=redis_url).returncode == 0
    assert assistant("threads", "show", "T", REDIS_URL=redis_url).returncode == 1


def test_thread_continues_across_restarts_on_sqlite(data_dir: Path) -> None:
    env = {"ASSISTANT_MEMORY__BACKEND": "sqlite"}
    assert assistant("chat", "--thread", "S", "-m", "My name is Ada.", **env).returncode == 0
    second = json.loads(assistant("chat", "--thread", "S", "-m", "Name?", "--json", **env).stdout)
    assert second["messages"] == 4
    assert (data_dir / "memory" / "checkpoints.sqlite").is_file()


def test_redis_killed_mid_conversation_falls_back_without_losing_anything(
    make_settings: Callable[..., Settings],
    fresh_redis_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(memory={"redis_url": fresh_redis_server.url})
    with open_checkpointer(settings) as saver:
        assert isinstance(saver, FallbackSaver)
        graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
        say(graph, "My name is Ada.")
        fresh_redis_server.kill()
        with caplog.at_level(logging.WARNING, logger="tools.memory"):
            state = say(graph, "What is my name?")
        assert texts(state) == ["My name is Ada.", "ok", "What is my name?", "ok"]
        state = say(graph, "Still there?")
        assert len(state["messages"]) == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert fresh_redis_server.url in warnings[0] and "SQLite" in warnings[0]
    # Redis is still down: the next process starts on SQLite and has the whole thread.
    with open_checkpointer(settings) as saver:
        assert isinstance(saver, SqliteSaver)
        graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
        assert len(graph.get_state(thread()).values["messages"]) == 6


def test_async_saver_falls_back_mid_conversation(
    make_settings: Callable[..., Settings], fresh_redis_server: Any
) -> None:
    settings = make_settings(memory={"redis_url": fresh_redis_server.url})

    async def run() -> list[str]:
        async with aopen_checkpointer(settings) as saver:
            assert isinstance(saver, FallbackSaver)
            graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
            await graph.ainvoke({"messages": [("user", "one")]}, thread())
            fresh_redis_server.kill()
            state = await graph.ainvoke({"messages": [("user", "two")]}, thread())
            return texts(state)

    assert asyncio.run(run()) == ["one", "ok", "two", "ok"]


def test_redis_without_modules_says_what_to_run(
    make_settings: Callable[..., Settings],
    plain_redis_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(memory={"redis_url": plain_redis_server.url})
    with (
        caplog.at_level(logging.WARNING, logger="tools.memory"),
        open_checkpointer(settings) as saver,
    ):
        assert isinstance(saver, SqliteSaver)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "RediSearch" in warning and "RedisJSON" in warning
    assert "Redis 8" in warning and "Redis Stack" in warning
    strict = make_settings(memory={"redis_url": plain_redis_server.url, "fallback": "none"})
    with (
        pytest.raises(MemoryBackendError, match="no RediSearch or RedisJSON module"),
        open_checkpointer(strict),
    ):
        pass


def test_twenty_concurrent_threads_never_see_each_other(
    redis_settings: Callable[..., Settings],
) -> None:
    settings = redis_settings()
    with open_checkpointer(settings) as saver:
        graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))

        def chat(n: int) -> dict[str, Any]:
            say(graph, f"I am user {n}, my secret is {n * 7919}.", f"user-{n}")
            return say(graph, "What is my secret?", f"user-{n}")

        with ThreadPoolExecutor(max_workers=20) as pool:
            states = list(pool.map(chat, range(20)))
        for n, state in enumerate(states):
            assert texts(state) == [
                f"I am user {n}, my secret is {n * 7919}.",
                "ok",
                "What is my secret?",
                "ok",
            ]
        assert len(list_threads(saver)) == 20


def test_threads_expire_after_their_ttl(
    redis_settings: Callable[..., Settings], redis_url: str
) -> None:
    from redis import Redis

    settings = redis_settings(ttl_minutes=1 / 60)  # one second
    client = Redis.from_url(redis_url)
    with open_checkpointer(settings) as saver:
        graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
        say(graph, "Remember me for a second.", "short")
        assert client.keys("checkpoint:short:*")
        # Polling through the saver would refresh the TTL (refresh_on_read), so watch Redis.
        deadline = time.monotonic() + 15
        while client.keys("checkpoint*:short:*") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not graph.get_state(thread("short")).values, "the thread did not expire"


def test_no_ttl_keeps_threads(redis_settings: Callable[..., Settings], redis_url: str) -> None:
    from redis import Redis

    settings = redis_settings()
    with open_checkpointer(settings) as saver:
        graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
        say(graph, "Keep me.", "kept")
    client = Redis.from_url(redis_url)
    keys = client.keys("checkpoint:*")
    assert keys and all(client.ttl(k) == -1 for k in keys)


@pytest.mark.slow
def test_default_model_recalls_across_processes_without_redis(default_gguf: Path) -> None:
    """The issue's promise: a fresh machine with no Redis still remembers a thread."""
    env = {
        "ASSISTANT_MODEL__BACKEND": "llamacpp",
        "ASSISTANT_MODEL__GGUF_PATH": str(default_gguf),
        "ASSISTANT_GENERATION__DO_SAMPLE": "false",
        "ASSISTANT_GENERATION__MAX_NEW_TOKENS": "12",
    }
    first = assistant("chat", "--thread", "R", "-m", "Hi! My name is Priya.", **env)
    assert first.returncode == 0, first.stderr
    assert "unreachable" in first.stderr and "SQLite" in first.stderr
    second = assistant(
        "chat",
        "--thread",
        "R",
        "-m",
        "What is my name? Answer with the name only.",
        "--json",
        **env,
    )
    assert "priya" in json.loads(second.stdout)["reply"].lower()


def test_concurrent_threads_fail_over_together(
    make_settings: Callable[..., Settings], fresh_redis_server: Any
) -> None:
    """Threads that hit the dead server while another one is switching must wait for it."""
    settings = make_settings(memory={"redis_url": fresh_redis_server.url})
    with open_checkpointer(settings) as saver:
        graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
        for n in range(10):
            say(graph, f"I am user {n}.", f"user-{n}")
        fresh_redis_server.kill()
        with ThreadPoolExecutor(max_workers=10) as pool:
            states = list(pool.map(lambda n: say(graph, "Who am I?", f"user-{n}"), range(10)))
    for n, state in enumerate(states):
        assert texts(state) == [f"I am user {n}.", "ok", "Who am I?", "ok"]


def test_state_history_on_redis_holds_messages_not_serialised_dicts(
    redis_settings: Callable[..., Settings],
) -> None:
    """langgraph-checkpoint-redis 0.5.2's sync list() left channel values serialised."""
    from langchain_core.messages import BaseMessage

    settings = redis_settings(fallback="none")
    with open_checkpointer(settings) as saver:
        graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
        say(graph, "hello", "h")
        history = list(graph.get_state_history(thread("h")))
    assert len(history) > 3
    for snapshot in history:
        assert all(isinstance(m, BaseMessage) for m in snapshot.values.get("messages", []))
    assert texts(history[0].values) == ["hello", "ok"]
