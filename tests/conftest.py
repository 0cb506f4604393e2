"""Shared fixtures: offline switches, a fresh data directory, fake-model graphs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Offline by design: nothing may reach a hub or send telemetry from the tests.
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_key, _value)

from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from graph import build_graph  # noqa: E402
from graph.settings import Settings, load_settings  # noqa: E402
from tests.support.loopback import only_loopback  # noqa: E402
from tools.guardrails import SafetyFilter  # noqa: E402
from tools.models import FakeChatModel  # noqa: E402

DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads a developer's ASSISTANT_* variables or writes to their data dir."""
    for key in list(os.environ):
        if key.startswith("ASSISTANT_") or key == "REDIS_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    # No Redis configured: the default backend is the SQLite file in the data dir, and a
    # developer's own Redis is never written to. Redis tests set their own URL, and
    # `dead_redis` configures one where nothing listens (the warning and the fallback).


@pytest.fixture
def dead_redis(monkeypatch: pytest.MonkeyPatch) -> str:
    """A configured Redis that is down: nothing listens at ``REDIS_URL``."""
    monkeypatch.setenv("REDIS_URL", DEAD_REDIS_URL)
    return DEAD_REDIS_URL


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings with the fake backend plus any overrides (nested dicts)."""

    def make(**overrides: Any) -> Settings:
        model = {"backend": "fake", **overrides.pop("model", {})}
        # A canned-reply model cannot judge: the judge is off unless a test turns it on
        # (tests/unit/test_guard.py does, with a model that answers as a judge).
        safety = {"judge": "off", **overrides.pop("safety", {})}
        return load_settings(model=model, safety=safety, **overrides)

    return make


@pytest.fixture
def fake_model() -> FakeChatModel:
    """A canned-reply model that records its prompts."""
    return FakeChatModel(reply="Hello from the fake model.")


@pytest.fixture
def fake_graph(make_settings: Callable[..., Settings], fake_model: FakeChatModel) -> Any:
    """The real graph on the fake model, with in-memory threads."""
    return build_graph(make_settings(), checkpointer=InMemorySaver(), model=fake_model)


@pytest.fixture(scope="module")
def guard() -> SafetyFilter:
    """The safety filter as shipped (its word lists and patterns), shared by a module."""
    return SafetyFilter()


@pytest.fixture
def nothing_leaves_this_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if it reached, or looked up, a host beyond 127.0.0.1.

    For tests of code that talks to outside services (the bots): with
    ``pytestmark = pytest.mark.usefixtures("nothing_leaves_this_machine")`` a wrong base
    URL fails the test instead of reaching the real service.
    """
    refused = only_loopback(monkeypatch)
    yield
    assert refused == [], f"tried to reach {refused}"


def thread(name: str = "t1") -> dict[str, Any]:
    """A run config for one thread."""
    return {"configurable": {"thread_id": name}}


@pytest.fixture
def data_dir() -> Path:
    """The fresh data directory of this test."""
    return Path(os.environ["ASSISTANT_DATA_DIR"])


ROOT = Path(__file__).resolve().parents[1]


def assistant(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """One run of the ``assistant`` CLI in its own process (fake model unless ``env`` says)."""
    return subprocess.run(
        [sys.executable, "-m", "apps.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ASSISTANT_MODEL__BACKEND": "fake", **env},
        timeout=180,
    )
