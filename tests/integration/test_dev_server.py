"""The assistant behind ``langgraph dev``: threads, token streaming, per-run context, and
threads shared with the CLI and notebooks through Redis.

One server for the module (in-memory runtime, offline, SmolLM2 through llama.cpp, threads
in the session's Redis), started from a directory of its own on a free port of 127.0.0.1,
and stopped by its process group at the end. A failing test prints the server's log.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from graph import build_graph
from graph.context import Context
from graph.settings import Settings
from tests.support.dev_server import DevServer, running, server_env
from tests.support.redis_server import RedisServer
from tools.memory import open_checkpointer

pytestmark = pytest.mark.integration

GRAPH_ID = "assistant"
PROFANE = "this is shit"  # allowed at moderate, refused at strict (see README, safety)


@pytest.fixture(scope="module")
def dev_server(
    tmp_path_factory: pytest.TempPathFactory, smollm2: Path, redis_server: RedisServer
) -> Iterator[DevServer]:
    """``langgraph dev`` serving the repository's langgraph.json, threads in Redis.

    It uses the session's Redis directly: ``redis_url`` is per test and empties Redis,
    which would pull the checkpointer's search indexes from under a module-long server.
    """
    if not redis_server.is_running():
        pytest.fail(f"the session Redis server has died; see {redis_server.log_file}")
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    directory = tmp_path_factory.mktemp("dev-server")
    with running(directory, server_env(directory, smollm2, redis_server.url)) as server:
        yield server


@pytest.fixture
def client(dev_server: DevServer) -> Iterator[SyncLangGraphClient]:
    """An SDK client of the server (never sends a developer's LangSmith key)."""
    sdk = get_sync_client(url=dev_server.url, api_key=None, timeout=120.0)
    yield sdk
    sdk.close()


@pytest.fixture
def local_settings(
    dev_server: DevServer,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """Settings of a CLI or notebook next to the server: same Redis, own data dir."""
    monkeypatch.setenv("REDIS_URL", dev_server.redis_url)
    return make_settings(model={"fake_reply": "Nice to meet you, Ada."})


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def assistant_id(client: SyncLangGraphClient) -> str:
    found = client.assistants.search(graph_id=GRAPH_ID)
    assert found, "the server did not register the assistant graph"
    return str(found[0]["assistant_id"])


def test_context_schema_is_the_assistants_configuration(
    dev_server: DevServer, client: SyncLangGraphClient
) -> None:
    with dev_server.log_on_failure():
        context_schema = client.assistants.get_schemas(assistant_id(client))["context_schema"]
        assert context_schema is not None, "the server shows no context schema"
        properties = context_schema["properties"]
        assert set(properties) == set(Context.model_fields)
        levels = [s.get("enum") for s in properties["safety_level"]["anyOf"]]
        assert ["strict", "moderate", "relaxed"] in levels
        assert {"type": "number", "minimum": 0.0, "maximum": 2.0}.items() <= (
            properties["temperature"]["anyOf"][0].items()
        )


def test_strict_from_the_run_or_the_assistant_refuses_profanity(
    dev_server: DevServer, client: SyncLangGraphClient
) -> None:
    with dev_server.log_on_failure():
        per_run = client.runs.wait(
            None, GRAPH_ID, input=user(PROFANE), context={"safety_level": "strict"}
        )
        strict = client.assistants.create(
            GRAPH_ID, context={"safety_level": "strict"}, name="assistant (strict)"
        )
        per_assistant = client.runs.wait(None, strict["assistant_id"], input=user(PROFANE))
        # The default level lets it through: the refusals above came from the context.
        default = client.runs.wait(
            None, GRAPH_ID, input=user(PROFANE), context={"max_new_tokens": 4}
        )
        for state in (per_run, per_assistant):
            assert isinstance(state, dict)
            assert state["safety"]["allowed"] is False
            safety = state["safety"]
            assert (safety["level"], safety["category"]) == ("strict", "profanity")
            assert state["messages"][-1]["content"].startswith("Sorry, I can't help with that.")
        assert isinstance(default, dict)
        assert default["safety"]["allowed"] is True
        assert default["safety"]["level"] == "moderate"


def test_two_turns_stream_tokens_recall_and_are_shared_through_redis(
    dev_server: DevServer, client: SyncLangGraphClient, local_settings: Settings
) -> None:
    with dev_server.log_on_failure():
        thread_id = client.threads.create()["thread_id"]

        chunks: list[str] = []
        first: dict[str, Any] = {}
        for part in client.runs.stream(
            thread_id,
            GRAPH_ID,
            input=user("My name is Ada. Nice to meet you!"),
            stream_mode=["messages-tuple", "values"],
        ):
            assert part.event != "error", part.data
            if part.event == "messages":
                chunk, meta = part.data
                if meta.get("langgraph_node") == "generate" and chunk["content"]:
                    chunks.append(chunk["content"])
            elif part.event == "values":
                first = part.data
        assert len(chunks) > 1, f"tokens did not stream: {chunks}"
        assert first["messages"][-1]["content"] == "".join(chunks)

        second = client.runs.wait(thread_id, GRAPH_ID, input=user("What is my name?"))
        assert isinstance(second, dict)
        # Greedy SmolLM2 answers with the name; the prompt grew by the first turn.
        assert "ada" in second["messages"][-1]["content"].lower(), second["messages"][-1]
        assert second["prompt_tokens"] > first["prompt_tokens"]

        state = client.threads.get_state(thread_id)["values"]
        assert isinstance(state, dict)
        served = [(m["type"], m["content"]) for m in state["messages"]]
        assert [kind for kind, _ in served] == ["human", "ai", "human", "ai"]
        assert served[0][1] == "My name is Ada. Nice to meet you!"
        assert served[2][1] == "What is my name?"

        # Outside the server: the thread is in Redis, and a notebook reads it back whole.
        with redis.Redis.from_url(dev_server.redis_url) as raw:
            assert any(raw.scan_iter(match=f"*{thread_id}*", count=1000))
        with open_checkpointer(local_settings) as saver:
            graph = build_graph(local_settings, checkpointer=saver)
            local = graph.get_state({"configurable": {"thread_id": thread_id}}).values
        assert [(m.type, m.text) for m in local["messages"]] == served


def test_a_thread_from_the_cli_continues_on_the_server(
    dev_server: DevServer, client: SyncLangGraphClient, local_settings: Settings
) -> None:
    # The server's API takes only UUIDs as thread ids.
    thread_id = str(uuid.uuid4())
    with open_checkpointer(local_settings) as saver:
        graph = build_graph(local_settings, checkpointer=saver)
        graph.invoke(user("My name is Ada."), {"configurable": {"thread_id": thread_id}})
    with dev_server.log_on_failure():
        # The server keeps its own list of threads: it has to be told about this one, and
        # which graph it belongs to, before it shows or continues it.
        client.threads.create(thread_id=thread_id, graph_id=GRAPH_ID, if_exists="do_nothing")
        before = client.threads.get_state(thread_id)["values"]
        assert isinstance(before, dict)
        assert [m["content"] for m in before["messages"]] == [
            "My name is Ada.",
            "Nice to meet you, Ada.",
        ]
        after = client.runs.wait(
            thread_id, GRAPH_ID, input=user("What is my name?"), context={"max_new_tokens": 4}
        )
        assert isinstance(after, dict)
        assert [m["type"] for m in after["messages"]] == ["human", "ai", "human", "ai"]


def test_long_term_memory_per_user_is_shared_with_the_cli(
    dev_server: DevServer, client: SyncLangGraphClient, local_settings: Settings
) -> None:
    from tools.memory import open_store
    from tools.memory.long_term import list_memories, user_key

    quiet = {"max_new_tokens": 4}
    with dev_server.log_on_failure():
        client.runs.wait(
            None,
            GRAPH_ID,
            input=user("Hi, I'm Ada. My locker code is 4817."),
            context={**quiet, "user_id": "ada-on-the-server"},
        )
        # a new thread of the same user starts with her facts in the prompt
        again = client.runs.wait(
            None,
            GRAPH_ID,
            input=user("What is my locker code?"),
            context={**quiet, "user_id": "ada-on-the-server"},
        )
        assert isinstance(again, dict)
        assert again["profile"] == "- Hi, I'm Ada.\n- My locker code is 4817."
        # another user's thread does not
        other = client.runs.wait(
            None,
            GRAPH_ID,
            input=user("What is my locker code?"),
            context={**quiet, "user_id": "bob-on-the-server"},
        )
        assert isinstance(other, dict)
        assert other["profile"] == "" and other["memories"] == []
        # the server's store API is our store
        found = client.store.search_items(
            ("memories", user_key("ada-on-the-server"), "facts"), limit=10
        )
        assert {item["value"]["text"] for item in found["items"]} == {
            "Hi, I'm Ada.",
            "My locker code is 4817.",
        }
    # and the CLI next to the server (same Redis) sees the same memories
    with open_store(local_settings) as store:
        assert store is not None
        facts = list_memories(store, "ada-on-the-server", kinds=("facts",))
    assert [m.text for m in facts] == ["My locker code is 4817.", "Hi, I'm Ada."]


def test_an_unknown_context_key_fails_the_run_naming_it(
    dev_server: DevServer, client: SyncLangGraphClient
) -> None:
    # The server itself drops keys its context schema lacks; graph/app.py refuses them.
    with dev_server.log_on_failure():
        thread_id = client.threads.create()["thread_id"]
        parts = list(
            client.runs.stream(
                thread_id,
                GRAPH_ID,
                input=user(PROFANE),
                context={"safty_level": "strict"},
                stream_mode="values",
            )
        )
        errors = [part.data for part in parts if part.event == "error"]
        assert errors, [part.event for part in parts]
        assert "'safty_level' (did you mean 'safety_level'?)" in str(errors[0])
        # Nothing ran: the thread has no turn (not one answered at the default level).
        state = client.threads.get_state(thread_id)["values"]
        assert not state or not state.get("messages")
        # An assistant that stores the typo fails each run the same way.
        typo = client.assistants.create(GRAPH_ID, context={"safty_level": "strict"})
        failed = client.runs.wait(None, typo["assistant_id"], input=user("hi"), raise_error=False)
        assert "safty_level" in str(failed)
        # A known key with a wrong value fails too (LangGraph builds the Context from it).
        bad = client.runs.wait(
            None, GRAPH_ID, input=user("hi"), context={"temperature": 5}, raise_error=False
        )
        assert "temperature" in str(bad)
        # The spelt-right key still works.
        strict = client.runs.wait(
            None, GRAPH_ID, input=user(PROFANE), context={"safety_level": "strict"}
        )
        assert isinstance(strict, dict) and strict["safety"]["allowed"] is False
