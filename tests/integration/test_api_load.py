"""Many users on one model, over HTTP on 127.0.0.1: no lost, crossed or duplicated replies.

- 20 concurrent clients x 3 turns on the fake model (which echoes the message it answers,
  so a reply that went to the wrong client shows), through the whole graph (routing and
  guardrails embed every message with the shared embedding model, in several threads).
  The server runs in this process (uvicorn on a free port), threads in SQLite.
- 4 concurrent clients x 2 turns on the default model, through ``assistant serve`` and the
  official ``openai`` client (hold the model lock: ``flock /work/wt/model.lock``).

Each client has its own thread; at the end every thread holds exactly its own turns, in
order, and each kept reply is the one its client received. Latency (p50/p95 per turn, from
sending to the last byte) and throughput are printed. Bounded in count and time; nothing
is asserted about time.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import BaseMessage

from apps.api.app import create_app
from apps.api.service import ApiService
from graph.settings import Settings
from tests.integration.test_api import serve, serve_env
from tests.support.http_server import ServerThread
from tools.memory import open_checkpointer, open_memory
from tools.models import FakeChatModel

pytestmark = pytest.mark.integration

WAIT = 600.0
"""Upper bound for one request (never a timing assertion)."""


def echo(messages: list[BaseMessage]) -> str:
    """The fake model's reply: the message it answers, so a crossed reply shows."""
    asked = [m for m in messages if m.type == "human"][-1].text
    return f"echo: {asked.split('Question:')[-1].strip()}"


@dataclass
class Load:
    """What the clients saw."""

    replies: dict[tuple[int, int], str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self, what: str, wall: float) -> str:
        ordered = sorted(self.seconds)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        return (
            f"API load, {what}: {len(self.seconds)} turns, p50 {statistics.median(ordered):.3f} s, "
            f"p95 {p95:.3f} s, {len(self.seconds) / wall:.2f} turns/s, "
            f"{self.refused} x 503 (retried after Retry-After)"
        )


def stream_turn(
    http: httpx.Client, url: str, body: dict[str, Any], thread_id: str, load: Load
) -> str:
    """One streamed turn over raw HTTP; a 503 waits ``Retry-After`` and tries again."""
    while True:
        started = time.perf_counter()
        with http.stream(
            "POST", url, json=body, headers={"X-Thread-Id": thread_id}, timeout=WAIT
        ) as response:
            if response.status_code == 503:
                with load.lock:
                    load.refused += 1
                time.sleep(float(response.headers["retry-after"]))
                continue
            assert response.status_code == 200, response.read()
            pieces = []
            done = False
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[len("data: ") :]
                if payload == "[DONE]":
                    done = True
                    continue
                chunk = json.loads(payload)
                assert "error" not in chunk, chunk
                if chunk["choices"] and "content" in chunk["choices"][0]["delta"]:
                    pieces.append(chunk["choices"][0]["delta"]["content"])
            assert done, "the stream did not end with [DONE]"
        with load.lock:
            load.seconds.append(time.perf_counter() - started)
        return "".join(pieces)


@contextlib.contextmanager
def in_process(settings: Settings, model: FakeChatModel) -> Iterator[tuple[str, ApiService]]:
    """The API in this process on a free port of 127.0.0.1 (uvicorn), until the block ends."""
    with open_memory(settings) as memory:
        service = ApiService(settings, memory, model=model)
        with ServerThread(create_app(service=service)) as url:
            yield url, service


@pytest.fixture
def fake_server(make_settings: Callable[..., Settings]) -> Iterator[tuple[str, ApiService]]:
    """The API in this process, the echoing fake model."""
    with in_process(make_settings(api={"queue_size": 16}), FakeChatModel(reply=echo)) as served:
        yield served


def test_a_client_that_disconnects_stops_its_turn_and_frees_the_model(
    make_settings: Callable[..., Settings],
) -> None:
    slow = FakeChatModel(reply=" ".join(f"word{i}" for i in range(2000)), delay=0.02)
    with in_process(make_settings(), slow) as (base, service):
        url = f"{base}/v1/chat/completions"
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go on"}]}
        with httpx.Client(timeout=WAIT) as http:
            with http.stream("POST", url, json=body, headers={"X-Thread-Id": "gone"}) as reply:
                assert reply.status_code == 200
                pieces = 0
                for line in reply.iter_lines():
                    if '"content": "word' in line:
                        pieces += 1
                    if pieces == 3:
                        break  # leaving the block closes the connection
            deadline = time.monotonic() + WAIT
            while service.queue.busy:  # the generation ends at its next token
                assert time.monotonic() < deadline, "the disconnected turn kept the model"
                time.sleep(0.05)
            history = service.history("gone", "api")
            assert history[-1][0] == "ai" and history[-1][1].endswith("[stopped]")
            assert len(history[-1][1].split()) < 2000
            # the model is free: the next turn on the same thread runs
            slow.reply = "Back again."
            again = http.post(url, json={**body, "stream": False}, headers={"X-Thread-Id": "gone"})
            assert again.status_code == 200
            assert again.json()["choices"][0]["message"]["content"] == "Back again."


def test_a_client_that_gives_up_while_queued_leaves_the_queue(
    make_settings: Callable[..., Settings],
) -> None:
    with in_process(make_settings(), FakeChatModel(reply="ok")) as (base, service):
        url = f"{base}/v1/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "waiting"}]}
        with service.queue.turn():  # the model is busy
            with httpx.Client() as http:
                asking = threading.Thread(target=lambda: _gives_up(http, url, body), daemon=True)
                asking.start()
                deadline = time.monotonic() + WAIT
                while service.queue.cancelled == 0:  # the server noticed the disconnect
                    assert time.monotonic() < deadline, "the queued turn never left"
                    time.sleep(0.05)
                asking.join(WAIT)
            assert service.queue.waiting == 0
        assert service.queue.served == 1  # only the holder: the gone turn never ran


def _gives_up(http: httpx.Client, url: str, body: dict[str, Any]) -> None:
    with pytest.raises(httpx.ReadTimeout):
        http.post(url, json=body, timeout=httpx.Timeout(60, read=1.0))


def test_20_clients_x_3_turns_on_the_fake_model(
    fake_server: tuple[str, ApiService], report_measurement: Callable[[str], None]
) -> None:
    base, service = fake_server
    clients, turns = 20, 3
    load = Load()
    url = f"{base}/v1/chat/completions"
    # warm up (the embedding model loads on the first turn), not measured; a few turns,
    # so the queue's Retry-After estimate (a median) reflects a usual turn
    with httpx.Client() as http:
        for t in range(5):
            stream_turn(http, url, _body("warm-up", 0, t), "warm-up", Load())

    def client(c: int) -> None:
        with httpx.Client() as http:
            for t in range(turns):
                reply = stream_turn(http, url, _body(f"client-{c}", c, t), f"load-{c}", load)
                with load.lock:
                    assert (c, t) not in load.replies, "a turn was answered twice"
                    load.replies[(c, t)] = reply

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client, c) for c in range(clients)]:
            future.result(timeout=WAIT)
    wall = time.perf_counter() - started
    report_measurement(load.summary(f"fake model, {clients} clients x {turns} turns", wall))

    # nothing lost, nothing crossed: every reply echoes its own message
    assert set(load.replies) == {(c, t) for c in range(clients) for t in range(turns)}
    for (c, t), reply in load.replies.items():
        assert reply == f"echo: {_text(c, t)}", (c, t, reply)
    # each thread holds exactly its turns, in order, as the client received them
    for c in range(clients):
        history = service.history(f"load-{c}", f"client-{c}")
        expected = []
        for t in range(turns):
            expected += [("human", _text(c, t)), ("ai", load.replies[(c, t)])]
        assert history == expected, c
    assert service.queue.waiting == 0 and not service.queue.busy


def _text(c: int, t: int) -> str:
    return f"client {c} turn {t}: what is {c * 100 + t} plus one?"


def _body(user: str, c: int, t: int) -> dict[str, Any]:
    return {
        "model": "assistant",
        "user": user,
        "stream": True,
        "messages": [{"role": "user", "content": _text(c, t)}],
    }


def test_4_clients_x_2_turns_on_the_default_model(
    tmp_path: Path,
    default_gguf: Path,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    report_measurement: Callable[[str], None],
) -> None:
    clients, turns = 4, 2
    env = serve_env(
        tmp_path / "data",
        default_gguf,
        ASSISTANT_MODEL__N_CTX="4096",
        ASSISTANT_GENERATION__MAX_NEW_TOKENS="12",
    )
    questions = [
        "What is the capital of France?",
        "What is two plus two?",
        "Name a colour.",
        "Name a fruit.",
    ]
    load = Load()
    with serve(tmp_path, env) as served:
        url = f"{served.url}/v1/chat/completions"
        key = {"Authorization": f"Bearer {json.loads(env['ASSISTANT_API__KEYS'])[0]}"}

        def client(c: int) -> None:
            with httpx.Client(headers=key) as http:
                for t in range(turns):
                    body = {
                        "model": "assistant",
                        "stream": True,
                        "user": f"user-{c}",
                        "messages": [{"role": "user", "content": f"{questions[c]} ({t})"}],
                    }
                    reply = stream_turn(http, url, body, f"default-{c}", load)
                    with load.lock:
                        load.replies[(c, t)] = reply

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            for future in [pool.submit(client, c) for c in range(clients)]:
                future.result(timeout=WAIT * 2)
        wall = time.perf_counter() - started
    report_measurement(load.summary(f"default model, {clients} clients x {turns} turns", wall))

    assert set(load.replies) == {(c, t) for c in range(clients) for t in range(turns)}
    assert all(reply.strip() for reply in load.replies.values())
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    with open_checkpointer(make_settings()) as saver:
        assert saver is not None
        for c in range(clients):
            latest = saver.get_tuple({"configurable": {"thread_id": f"default-{c}"}})
            assert latest is not None
            kept = [(m.type, m.text) for m in latest.checkpoint["channel_values"]["messages"]]
            expected = []
            for t in range(turns):
                expected += [("human", f"{questions[c]} ({t})"), ("ai", load.replies[(c, t)])]
            assert kept == expected, c
