"""Two stateless ``assistant serve`` replicas on one Redis and one Chroma server.

What a team deployment looks like (docs/deployment.md): every replica keeps threads,
long-term memory and the per-thread lock in Redis and documents in a Chroma server, so a
thread started on one replica continues on the other, and a document ingested with one
replica's settings is found by the other. Each replica has a data directory of its own,
so nothing can pass between them through local files. Everything runs on 127.0.0.1 on
free ports and is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.documents import user_collection
from graph.settings import load_settings
from tests.support.assistant_serve import REPO_ROOT, Served, serve
from tests.support.chroma_server import ChromaServer, running
from tests.support.processes import child_env
from tools.memory import open_checkpointer

pytestmark = pytest.mark.integration

KEY = "replica-test-key-0123456789"
START_TIMEOUT = 180.0
FACT = "The espresso machine in room 4B takes fuse ZQ-9090-Z, kept in drawer 7."
QUESTION = "What fuse does the espresso machine in room 4B take?"


def replica_env(
    data_dir: Path,
    redis_url: str,
    chroma: ChromaServer,
    model: dict[str, str],
    *,
    shared: bool = True,
) -> dict[str, str]:
    """The environment of one replica: shared Redis and Chroma, its own data directory.

    ``shared``: a team's server, every user answered from ``chroma.collection``.
    """
    return child_env(
        ASSISTANT_DATA_DIR=str(data_dir),
        ASSISTANT_MEMORY__BACKEND="redis",
        ASSISTANT_MEMORY__REDIS_URL=redis_url,
        ASSISTANT_MEMORY__FALLBACK="none",  # a replica must never keep threads locally
        ASSISTANT_CHROMA__URL=chroma.url,
        ASSISTANT_CHROMA__SHARED=str(shared).lower(),
        ASSISTANT_API__KEYS=json.dumps([KEY]),
        **model,
    )


def ingest(env: dict[str, str], document: Path, *collection: str) -> None:
    """``assistant ingest`` with ``env``'s settings (into the Chroma server)."""
    done = subprocess.run(
        [sys.executable, "-m", "apps.cli", "ingest", str(document), *collection],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def replica(env: dict[str, str], log_file: Path) -> contextlib.AbstractContextManager[Served]:
    """One ``assistant serve`` replica for the ``with`` block."""
    return serve(env, log_file, KEY, START_TIMEOUT)


def ask(server: Served, thread: str, text: str, user: str = "ada") -> tuple[str, dict[str, object]]:
    """One turn on ``thread``, streamed; the reply and the ``assistant`` extension."""
    stream = server.client().chat.completions.create(
        model="assistant",
        messages=[{"role": "user", "content": text}],
        stream=True,
        user=user,
        extra_headers={"X-Thread-Id": thread},
    )
    reply, extension = "", {}
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            reply += chunk.choices[0].delta.content
        extra = (chunk.model_extra or {}).get("assistant")
        if extra:
            extension = extra
    return reply, extension


def run_two_replicas(
    tmp_path: Path, redis_url: str, model: dict[str, str]
) -> tuple[list[tuple[str, str]], dict[str, object]]:
    with running(tmp_path / "chroma") as chroma:
        env_a = replica_env(tmp_path / "a", redis_url, chroma, model)
        env_b = replica_env(tmp_path / "b", redis_url, chroma, model)
        document = tmp_path / "facilities.md"
        document.write_text(f"# Facilities\n\n{FACT}\n", encoding="utf-8")
        # Ingested with replica a's settings: into the Chroma server, not a's directory.
        ingest(env_a, document)
        with (
            replica(env_a, tmp_path / "a.log") as a,
            replica(env_b, tmp_path / "b.log") as b,
        ):
            first, _ = ask(a, "team-thread", "Hello, I look after the office kitchen.")
            second, found = ask(b, "team-thread", QUESTION)
        assert first and second
        settings = load_settings(
            data_dir=str(tmp_path / "reader"),
            memory={"backend": "redis", "redis_url": redis_url, "fallback": "none"},
        )
        with open_checkpointer(settings) as saver:
            assert saver is not None
            state = saver.get_tuple({"configurable": {"thread_id": "team-thread"}})
            assert state is not None
            messages = state.checkpoint["channel_values"]["messages"]
        turns = [(m.type, m.text) for m in messages]
    for directory in (tmp_path / "a", tmp_path / "b"):
        # nothing a replica keeps locally would be needed by the other
        assert not (directory / "chroma").exists()
        assert not list(directory.rglob("*.sqlite*"))
    return turns, found


def check(turns: list[tuple[str, str]], found: dict[str, object]) -> None:
    assert [kind for kind, _ in turns] == ["human", "ai", "human", "ai"]
    assert turns[0][1] == "Hello, I look after the office kitchen."
    assert turns[2][1] == QUESTION
    sources = found.get("sources")
    assert isinstance(sources, list) and sources, found
    assert any(str(s.get("name", "")).startswith("facilities") for s in sources), sources
    assert all("/" not in json.dumps(s) for s in sources), sources  # no server path


FAKE = {"ASSISTANT_MODEL__BACKEND": "fake", "ASSISTANT_SAFETY__JUDGE": "off"}


def test_without_sharing_each_api_user_is_answered_from_their_own_documents(
    tmp_path: Path, redis_url: str
) -> None:
    with running(tmp_path / "chroma") as chroma:
        env = replica_env(tmp_path / "a", redis_url, chroma, FAKE, shared=False)
        machines = tmp_path / "machine" / "facilities.md"
        adas = tmp_path / "ada" / "facilities-ada.md"
        for document in (machines, adas):
            document.parent.mkdir()
            document.write_text(f"# Facilities\n\n{FACT}\n", encoding="utf-8")
        ingest(env, machines)  # chroma.collection: the machine user's
        ingest(env, adas, "--collection", user_collection("ada"))
        with replica(env, tmp_path / "a.log") as server:
            _, bob = ask(server, "bob-1", QUESTION, user="bob")
            _, ada = ask(server, "ada-1", QUESTION, user="ada")
    assert bob.get("sources") == [], bob
    sources = ada.get("sources")
    assert isinstance(sources, list) and sources, ada
    assert {s["name"] for s in sources} == {"facilities-ada.md"}, sources
    assert str(tmp_path) not in json.dumps(ada)


def test_a_thread_and_a_document_are_shared_by_two_replicas(tmp_path: Path, redis_url: str) -> None:
    turns, found = run_two_replicas(tmp_path, redis_url, FAKE)
    check(turns, found)


def test_two_replicas_on_the_default_model(
    tmp_path: Path, redis_url: str, default_gguf: Path
) -> None:
    turns, found = run_two_replicas(
        tmp_path,
        redis_url,
        {
            "ASSISTANT_MODEL__BACKEND": "llamacpp",
            "ASSISTANT_MODEL__GGUF_PATH": str(default_gguf),
            "ASSISTANT_GENERATION__MAX_NEW_TOKENS": "24",
            "ASSISTANT_GENERATION__DO_SAMPLE": "false",
        },
    )
    check(turns, found)
    assert "ZQ-9090-Z" in turns[3][1]  # the answer comes from the document, on the other replica
