"""What the memory backends share: their names, errors, paths and Redis helpers.

The checkpointers (threads), the store (long-term memory) and the thread locks all follow
one choice, :func:`store_name`: Redis when it is configured, else a local SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

from graph.settings import Settings

logger = logging.getLogger(__name__)


Saver = BaseCheckpointSaver[str]
StoreName = Literal["redis", "sqlite", "memory", "none"]

MODULES_HINT = (
    "the official Redis checkpointer needs the RediSearch and RedisJSON modules: run "
    "Redis 8 or newer, or Redis Stack (for development: `make redis-up`)"
)


class MemoryBackendError(RuntimeError):
    """The configured memory backend cannot be used; the message says why and what to do."""


def make_parent(path: Path) -> None:
    """Create the folder a memory file goes in.

    Raises:
        MemoryBackendError: It cannot be created (a file in the way, no permission, a
            read-only or missing mount), with the path and the system's reason.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MemoryBackendError(
            f"Cannot create the folder for {path}: {exc.strerror or exc} "
            f"({exc.filename or path.parent}). Check data_dir (ASSISTANT_DATA_DIR) or "
            "the memory paths in the settings."
        ) from None


SQLITE_BUSY_TIMEOUT = 30.0
"""Seconds a SQLite connection, or its setup, waits for another process's lock."""


def _sqlite_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _backoff(attempt: int) -> float:
    # Jittered so processes that collided once do not collide again in step.
    return float(min(0.5, 0.01 * 2**attempt) * (0.5 + random.random()))


def _setup_lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".setup.lock")


def _setup_timed_out(path: Path, deadline: float) -> MemoryBackendError:
    return MemoryBackendError(
        f"Cannot set up the SQLite file {path}: another process kept it locked for "
        f"{deadline:.0f} s. Is a stuck assistant process still running?"
    )


@contextmanager
def _timed_out_as_error(path: Path, deadline: float) -> Iterator[None]:
    """Waiting for the lock, or a lock past the deadline, as one clear error."""
    from filelock import Timeout

    try:
        yield
    except Timeout:
        raise _setup_timed_out(path, deadline) from None
    except sqlite3.OperationalError as exc:
        if _sqlite_locked(exc):
            raise _setup_timed_out(path, deadline) from exc
        raise


def _run_setup(setup: Callable[[], object], end: float) -> None:
    attempt = 0
    while True:
        try:
            setup()
            return
        except sqlite3.OperationalError as exc:
            attempt += 1
            if not _sqlite_locked(exc) or time.monotonic() >= end:
                raise
            time.sleep(_backoff(attempt))


def set_up_sqlite(
    setup: Callable[[], object], path: Path, deadline: float = SQLITE_BUSY_TIMEOUT
) -> None:
    """Run a SQLite saver's or store's ``setup``, safe against processes starting together.

    Two things go wrong when several processes open a new file at once:

    - SQLite skips the busy handler where waiting could deadlock (two connections that
      read the schema and then both want to write it, or switch the file to WAL) and
      says "database is locked" at once, whatever the connection's timeout
      (https://sqlite.org/c3ref/busy_handler.html);
    - the store's migrations read their version and then apply what is newer, so two
      processes could apply the same migration.

    So setups take turns under an OS file lock next to the database, and one that still
    meets a lock (a process past its setup writing a turn) runs again after a pause: the
    setup only creates what is missing.

    Args:
        setup: The saver's or store's ``setup`` method.
        path: The SQLite file being set up.
        deadline: Seconds to wait for other processes, in total.

    Raises:
        MemoryBackendError: Other processes kept the file locked for ``deadline`` seconds.
        sqlite3.DatabaseError: The setup failed for another reason.
    """
    from filelock import FileLock, Timeout

    end = time.monotonic() + deadline
    lock = FileLock(_setup_lock_path(path), timeout=deadline, thread_local=False)
    with _timed_out_as_error(path, deadline):
        try:
            lock.acquire()
        except Timeout:
            raise
        except OSError:
            # No lock file where the database is (a read-only folder): nobody can set
            # the file up there either, and the setup says so in SQLite's words.
            _run_setup(setup, end)
            return
        try:
            _run_setup(setup, end)
        finally:
            lock.release()


async def aset_up_sqlite(
    setup: Callable[[], Awaitable[object]], path: Path, deadline: float = SQLITE_BUSY_TIMEOUT
) -> None:
    """The async twin of :func:`set_up_sqlite` (the lock is awaited off the event loop).

    Raises:
        MemoryBackendError: Other processes kept the file locked for ``deadline`` seconds.
        sqlite3.DatabaseError: The setup failed for another reason.
    """
    from filelock import AsyncFileLock, Timeout

    async def run() -> None:
        attempt = 0
        while True:
            try:
                await setup()
                return
            except sqlite3.OperationalError as exc:
                attempt += 1
                if not _sqlite_locked(exc) or time.monotonic() >= end:
                    raise
                await asyncio.sleep(_backoff(attempt))

    end = time.monotonic() + deadline
    lock = AsyncFileLock(_setup_lock_path(path), timeout=deadline)
    with _timed_out_as_error(path, deadline):
        try:
            await lock.acquire()
        except Timeout:
            raise
        except OSError:  # a read-only folder, as in set_up_sqlite
            await run()
            return
        try:
            await run()
        finally:
            await lock.release()


class RedisUnavailableError(MemoryBackendError):
    """Redis did not answer (refused, timed out, or the connection broke)."""


class RedisModulesMissingError(MemoryBackendError):
    """The server answers but lacks RediSearch or RedisJSON (a plain Redis 7, say)."""


def store_name(settings: Settings) -> StoreName:
    """The backend in use: redis, sqlite, memory or none.

    ``memory.enabled = false`` means ``none``, and ``auto`` means ``redis`` when a Redis
    URL is configured (``REDIS_URL`` or ``memory.redis_url``), else ``sqlite``, so a
    fresh machine starts on a local file without a warning.
    """
    if not settings.memory.enabled:
        return "none"
    backend = settings.memory.backend
    if backend == "auto":
        return "redis" if settings.memory.redis_url else "sqlite"
    return backend


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of the ``sqlite`` backend and of the Redis fallback."""
    return settings.memory.sqlite_path or settings.data_dir / "memory" / "checkpoints.sqlite"


def store_path(settings: Settings) -> Path:
    """The SQLite file of long-term memory (the LangGraph store) on SQLite."""
    return settings.long_term.store_path or settings.data_dir / "memory" / "store.sqlite"


def locks_dir(settings: Settings) -> Path:
    """Where the file locks of busy threads live (SQLite and in-process backends)."""
    return settings.data_dir / "memory" / "locks"


def redact(url: str) -> str:
    """The URL with its password hidden, for log lines and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://***@{host}"


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) means the Redis server could not be reached.

    redisvl wraps the client's errors in its own, so the whole chain is looked at.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RedisConnectionError | RedisTimeoutError | OSError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _lost_index_race(exc: BaseException) -> bool:
    """True when ``exc`` says another process created a RediSearch index first.

    redisvl checks that an index exists, then creates it: two processes starting at once
    can both pass the check, and the second creation fails with "Index already exists".
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if "index already exists" in str(current).lower():
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


_SETUP_ATTEMPTS = 3


def _retry_or_raise(exc: Exception, attempt: int, settings: Settings) -> None:
    """Return if a failed setup should run again (a lost index race); else raise."""
    if is_unreachable(exc):
        url = redact(settings.memory.redis_address)
        raise RedisUnavailableError(f"Redis at {url} is unreachable: {exc}") from exc
    if attempt == _SETUP_ATTEMPTS or not _lost_index_race(exc):
        raise exc


def set_up_redis(setup: Callable[[], object], settings: Settings) -> None:
    """Run a Redis saver's or store's ``setup``, safe against processes starting together.

    A lost index-creation race is retried: the second pass sees the index and skips it.

    Raises:
        RedisUnavailableError: Redis stopped answering while setting up.
    """
    for attempt in range(1, _SETUP_ATTEMPTS + 1):
        try:
            setup()
            return
        except Exception as exc:
            _retry_or_raise(exc, attempt, settings)


async def aset_up_redis(setup: Callable[[], Awaitable[object]], settings: Settings) -> None:
    """The async twin of :func:`set_up_redis`.

    Raises:
        RedisUnavailableError: Redis stopped answering while setting up.
    """
    for attempt in range(1, _SETUP_ATTEMPTS + 1):
        try:
            await setup()
            return
        except Exception as exc:
            _retry_or_raise(exc, attempt, settings)


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for a redis-py client: short timeouts and one quick retry."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    cfg = settings.memory
    # redis-py's default retry backs off for seconds on a dead server; one quick retry
    # rides out a blip without turning "Redis is down" into a long hang.
    return {
        "socket_connect_timeout": cfg.redis_connect_timeout,
        "socket_timeout": cfg.redis_socket_timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    }


def _unknown_command(exc: Exception) -> bool:
    return "unknown command" in str(exc).lower()


def _missing_modules(search: Exception | None, json: Exception | None, url: str) -> None:
    missing = [name for name, err in (("RediSearch", search), ("RedisJSON", json)) if err]
    if missing:
        raise RedisModulesMissingError(
            f"Redis at {redact(url)} has no {' or '.join(missing)} module: {MODULES_HINT}."
        )


def probe(client: Any, url: str) -> None:
    """Check that Redis answers and has the modules the saver and the store need.

    Raises:
        RedisUnavailableError: The server does not answer.
        RedisModulesMissingError: RediSearch or RedisJSON is missing.
    """
    from redis.exceptions import RedisError, ResponseError

    try:
        client.ping()
        errors: list[Exception | None] = []
        for command in (("FT._LIST",), ("JSON.TYPE", "local-assistant:probe")):
            try:
                client.execute_command(*command)
                errors.append(None)
            except ResponseError as exc:
                errors.append(exc if _unknown_command(exc) else None)
    except RedisError as exc:
        raise RedisUnavailableError(f"Redis at {redact(url)} is unreachable: {exc}") from exc
    _missing_modules(errors[0], errors[1], url)


async def aprobe(client: Any, url: str) -> None:
    """Async twin of :func:`probe`."""
    from redis.exceptions import RedisError, ResponseError

    try:
        await client.ping()
        errors: list[Exception | None] = []
        for command in (("FT._LIST",), ("JSON.TYPE", "local-assistant:probe")):
            try:
                await client.execute_command(*command)
                errors.append(None)
            except ResponseError as exc:
                errors.append(exc if _unknown_command(exc) else None)
    except RedisError as exc:
        raise RedisUnavailableError(f"Redis at {redact(url)} is unreachable: {exc}") from exc
    _missing_modules(errors[0], errors[1], url)


def warn_fallback(settings: Settings, exc: MemoryBackendError, what: str = "") -> None:
    """Log the one warning of a fallback at start-up, or stop if there is none.

    Raises:
        MemoryBackendError: ``memory.fallback`` is ``none``.
    """
    if settings.memory.fallback == "none":
        raise MemoryBackendError(
            f"{exc} (memory.fallback is 'none', so the assistant stops here)"
        ) from exc
    where = (
        f"the SQLite store {sqlite_path(settings) if not what else store_path(settings)}"
        if settings.memory.fallback == "sqlite"
        else "process memory (it ends with the process)"
    )
    logger.warning("%s; continuing%s on %s.", exc, f" {what}" if what else "", where)
