"""Memory backends without a Redis server: choice, fallback at start-up, errors, SQLite."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from graph import build_graph
from graph.settings import Settings, SettingsError
from tests.conftest import thread
from tools.memory import (
    MemoryBackendError,
    aopen_checkpointer,
    list_threads,
    open_checkpointer,
    redact,
    sqlite_path,
    store_name,
)
from tools.memory.backends import aset_up_sqlite, set_up_sqlite
from tools.models import FakeChatModel


def say(saver: Any, settings: Settings, text: str, name: str = "t1") -> dict[str, Any]:
    graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
    state: dict[str, Any] = graph.invoke({"messages": [("user", text)]}, thread(name))
    return state


@pytest.mark.parametrize(
    ("memory", "kind"),
    [
        ({"backend": "memory"}, InMemorySaver),
        ({"backend": "sqlite"}, SqliteSaver),
        ({"backend": "none"}, type(None)),
        ({"backend": "sqlite", "enabled": False}, type(None)),
    ],
)
def test_backend_choice(
    make_settings: Callable[..., Settings], memory: dict[str, Any], kind: type
) -> None:
    with open_checkpointer(make_settings(memory=memory)) as saver:
        assert isinstance(saver, kind)


def test_default_is_sqlite_without_a_warning_unless_redis_is_configured(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings()
    assert (settings.memory.backend, settings.memory.fallback) == ("auto", "sqlite")
    assert store_name(settings) == "sqlite"
    with (
        caplog.at_level(logging.DEBUG, logger="tools.memory"),
        open_checkpointer(settings) as saver,
    ):
        assert isinstance(saver, SqliteSaver)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # A URL from the environment (or memory.redis_url), or backend = redis, means Redis.
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/0")
    assert store_name(make_settings()) == "redis"
    monkeypatch.delenv("REDIS_URL")
    assert store_name(make_settings(memory={"redis_url": "redis://h:1"})) == "redis"
    redis = make_settings(memory={"backend": "redis"})
    assert store_name(redis) == "redis"
    assert redis.memory.redis_address == "redis://localhost:6379"
    assert store_name(make_settings(memory={"backend": "auto", "enabled": False})) == "none"


def test_unreachable_redis_at_start_falls_back_to_sqlite_and_remembers(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, dead_redis: str
) -> None:
    settings = make_settings()
    with (
        caplog.at_level(logging.WARNING, logger="tools.memory"),
        open_checkpointer(settings) as saver,
    ):
        assert isinstance(saver, SqliteSaver)
        say(saver, settings, "My name is Ada.")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "redis://127.0.0.1:1/0" in warnings[0] and "unreachable" in warnings[0]
    assert str(sqlite_path(settings)) in warnings[0]
    # A "restart": a new store on the same file still has the thread.
    with open_checkpointer(settings) as saver:
        state = say(saver, settings, "What's my name?")
    assert [m.text for m in state["messages"][::2]] == ["My name is Ada.", "What's my name?"]


def test_fallback_none_stops_with_a_clear_error(
    make_settings: Callable[..., Settings], dead_redis: str
) -> None:
    settings = make_settings(memory={"fallback": "none"})
    with (
        pytest.raises(MemoryBackendError, match=r"redis://127\.0\.0\.1:1/0 is unreachable"),
        open_checkpointer(settings),
    ):
        pass


def test_fallback_to_process_memory(
    make_settings: Callable[..., Settings], dead_redis: str
) -> None:
    with open_checkpointer(make_settings(memory={"fallback": "memory"})) as saver:
        assert isinstance(saver, InMemorySaver)


def test_async_open_falls_back_too(make_settings: Callable[..., Settings], dead_redis: str) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    settings = make_settings()

    async def run() -> list[str]:
        async with aopen_checkpointer(settings) as saver:
            assert isinstance(saver, AsyncSqliteSaver)
            graph = build_graph(settings, checkpointer=saver, model=FakeChatModel(reply="ok"))
            await graph.ainvoke({"messages": [("user", "hello")]}, thread("a"))
            state = await graph.ainvoke({"messages": [("user", "again")]}, thread("a"))
            return [m.text for m in state["messages"]]

    assert asyncio.run(run()) == ["hello", "ok", "again", "ok"]


def test_corrupt_sqlite_file_is_a_clear_error(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    bad = tmp_path / "checkpoints.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    settings = make_settings(memory={"backend": "sqlite", "sqlite_path": str(bad)})
    with (
        pytest.raises(MemoryBackendError, match="Cannot use the SQLite store"),
        open_checkpointer(settings),
    ):
        pass
    assert bad.read_bytes().startswith(b"this is not a database"), "the file was overwritten"


def test_threads_are_isolated_listed_and_deleted(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(memory={"backend": "sqlite"})
    with open_checkpointer(settings) as saver:
        say(saver, settings, "I am Ada.", "ada")
        say(saver, settings, "I am Bob.", "bob")
        bob = say(saver, settings, "Who am I?", "bob")
        assert "Ada" not in " ".join(m.text for m in bob["messages"])
        assert {t.thread_id for t in list_threads(saver)} == {"ada", "bob"}
        saver.delete_thread("ada")
        assert [t.thread_id for t in list_threads(saver)] == ["bob"]


@pytest.mark.parametrize(
    ("memory", "message"),
    [
        ({"backend": "postgres"}, "memory.backend"),
        ({"fallback": "disk"}, "memory.fallback"),
        ({"redis_url": "localhost:6379"}, "memory.redis_url"),
        ({"ttl_minutes": 0}, "memory.ttl_minutes"),
    ],
)
def test_bad_memory_settings_name_the_key(
    make_settings: Callable[..., Settings], memory: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        make_settings(memory=memory)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379", "redis://localhost:6379"),
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:s3cret@host:6379", "redis://user:***@host:6379"),
        ("rediss://token@host", "rediss://***@host"),
    ],
)
def test_passwords_never_reach_the_log(url: str, shown: str) -> None:
    assert redact(url) == shown


class FlakySetup:
    """A setup() that fails ``failures`` times with ``error`` before it succeeds."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error

    async def asetup(self) -> None:
        self()


def index_race() -> Exception:
    from redisvl.exceptions import RedisSearchError

    try:
        raise RuntimeError("Index already exists")  # what redis-py reports
    except RuntimeError as cause:
        try:
            raise RedisSearchError("Failed to create index 'checkpoint' on Redis") from cause
        except RedisSearchError as wrapped:
            return wrapped


@pytest.mark.parametrize("failures", [1, 2])
def test_a_process_that_loses_the_index_race_sets_up_again(
    failures: int, make_settings: Callable[..., Settings]
) -> None:
    from tools.memory.backends import aset_up_redis, set_up_redis

    settings = make_settings()
    setup = FlakySetup(index_race(), failures)
    set_up_redis(setup, settings)
    assert setup.calls == failures + 1
    asetup = FlakySetup(index_race(), failures)
    asyncio.run(aset_up_redis(asetup.asetup, settings))
    assert asetup.calls == failures + 1


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (ValueError("bad schema"), ValueError),
        (ConnectionRefusedError("refused"), MemoryBackendError),
    ],
)
def test_other_setup_errors_are_not_retried(
    error: Exception, raised: type[Exception], make_settings: Callable[..., Settings]
) -> None:
    from tools.memory.backends import set_up_redis

    setup = FlakySetup(error, failures=1)
    with pytest.raises(raised):
        set_up_redis(setup, make_settings())
    assert setup.calls == 1


def test_a_race_lost_every_time_is_reported(make_settings: Callable[..., Settings]) -> None:
    from redisvl.exceptions import RedisSearchError

    from tools.memory.backends import set_up_redis

    with pytest.raises(RedisSearchError):
        set_up_redis(FlakySetup(index_race(), failures=10), make_settings())


# --- SQLite setup of processes starting together ------------------------------------------


def locked() -> Exception:
    return sqlite3.OperationalError("database is locked")


@pytest.mark.parametrize("use_async", [False, True])
def test_a_locked_sqlite_setup_runs_again_until_it_gets_through(
    tmp_path: Path, use_async: bool
) -> None:
    flaky = FlakySetup(locked(), failures=4)
    path = tmp_path / "t.sqlite"
    if use_async:
        asyncio.run(aset_up_sqlite(flaky.asetup, path))
    else:
        set_up_sqlite(flaky, path)
    assert flaky.calls == 5


@pytest.mark.parametrize("use_async", [False, True])
def test_a_sqlite_setup_locked_past_the_deadline_is_a_clear_error(
    tmp_path: Path, use_async: bool
) -> None:
    flaky = FlakySetup(locked(), failures=10**6)
    path = tmp_path / "t.sqlite"
    with pytest.raises(MemoryBackendError, match=r"t\.sqlite.*kept it locked"):
        if use_async:
            asyncio.run(aset_up_sqlite(flaky.asetup, path, deadline=0.2))
        else:
            set_up_sqlite(flaky, path, deadline=0.2)
    assert flaky.calls > 1


@pytest.mark.parametrize("use_async", [False, True])
def test_other_sqlite_setup_errors_are_not_retried(tmp_path: Path, use_async: bool) -> None:
    flaky = FlakySetup(sqlite3.OperationalError("disk I/O error"), failures=1)
    path = tmp_path / "t.sqlite"
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        if use_async:
            asyncio.run(aset_up_sqlite(flaky.asetup, path))
        else:
            set_up_sqlite(flaky, path)
    assert flaky.calls == 1


def test_sqlite_setups_take_turns_across_holders(tmp_path: Path) -> None:
    """While one process sets a file up, another's setup waits for it (the OS file lock)."""
    import threading

    path = tmp_path / "t.sqlite"
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        order.append("first in")
        inside.set()
        release.wait(10)
        order.append("first out")

    worker = threading.Thread(target=set_up_sqlite, args=(first, path))
    worker.start()
    assert inside.wait(10)
    second = threading.Thread(target=set_up_sqlite, args=(lambda: order.append("second"), path))
    second.start()
    second.join(0.3)
    assert second.is_alive()  # waiting for the first setup's lock
    release.set()
    worker.join(10)
    second.join(10)
    assert order == ["first in", "first out", "second"]


@pytest.mark.parametrize("use_async", [False, True])
def test_a_folder_where_no_lock_file_can_be_made_still_gets_sqlites_own_error(
    tmp_path: Path, use_async: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only data folder: the setup runs unlocked and fails in SQLite's words."""
    import filelock

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(30, "Read-only file system", str(tmp_path / "t.sqlite.setup.lock"))

    monkeypatch.setattr(filelock.UnixFileLock, "_acquire", refuse)
    monkeypatch.setattr(filelock.AsyncUnixFileLock, "_acquire", refuse)
    flaky = FlakySetup(sqlite3.OperationalError("attempt to write a readonly database"), 1)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        if use_async:
            asyncio.run(aset_up_sqlite(flaky.asetup, tmp_path / "t.sqlite"))
        else:
            set_up_sqlite(flaky, tmp_path / "t.sqlite")
    ok = FlakySetup(locked(), failures=0)
    if use_async:
        asyncio.run(aset_up_sqlite(ok.asetup, tmp_path / "t.sqlite"))
    else:
        set_up_sqlite(ok, tmp_path / "t.sqlite")
    assert ok.calls == 1
