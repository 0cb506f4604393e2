"""Checkpointers: where LangGraph keeps threads between turns.

``memory.backend`` picks one: ``redis`` (the official saver; needs RediSearch and
RedisJSON, i.e. Redis 8+ or Redis Stack), ``sqlite`` (a file in the data directory),
``memory`` (the life of the process) or ``none`` (every turn stands alone).

Redis is allowed to go away. Unreachable at start-up, the assistant logs one warning and
opens the ``memory.fallback`` store instead; unreachable later, :class:`FallbackSaver`
switches to that store in the middle of the turn, carrying over the latest checkpoint of
every thread this process has touched, so neither the conversation so far nor the
current message is lost.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    CheckpointTuple,
)
from langgraph.checkpoint.memory import InMemorySaver

from graph.settings import Settings, get_settings
from tools.memory.backends import (
    MODULES_HINT,
    MemoryBackendError,
    RedisModulesMissingError,
    RedisUnavailableError,
    Saver,
    is_unreachable,
    redact,
    sqlite_path,
    store_name,
)
from tools.memory.fallback import FallbackSaver

if TYPE_CHECKING:
    from langgraph.checkpoint.redis import RedisSaver

logger = logging.getLogger(__name__)


def _client_options(settings: Settings) -> dict[str, Any]:
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


def _ttl(settings: Settings) -> dict[str, Any] | None:
    minutes = settings.memory.ttl_minutes
    return None if minutes is None else {"default_ttl": minutes, "refresh_on_read": True}


def _unknown_command(exc: Exception) -> bool:
    return "unknown command" in str(exc).lower()


def _missing_modules(search: Exception | None, json: Exception | None, url: str) -> None:
    missing = [name for name, err in (("RediSearch", search), ("RedisJSON", json)) if err]
    if missing:
        raise RedisModulesMissingError(
            f"Redis at {redact(url)} has no {' or '.join(missing)} module: {MODULES_HINT}."
        )


def _probe(client: Any, url: str) -> None:
    """Check that Redis answers and has the modules the saver needs."""
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


async def _aprobe(client: Any, url: str) -> None:
    """Async twin of :func:`_probe`."""
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


def _warn_fallback(settings: Settings, exc: MemoryBackendError) -> None:
    if settings.memory.fallback == "none":
        raise MemoryBackendError(
            f"{exc} (memory.fallback is 'none', so the assistant stops here)"
        ) from exc
    where = (
        f"the SQLite store {sqlite_path(settings)}"
        if settings.memory.fallback == "sqlite"
        else "process memory (threads end with the process)"
    )
    logger.warning("%s; continuing on %s.", exc, where)


# --- opening savers -------------------------------------------------------------------


@contextmanager
def _open_sqlite(settings: Settings) -> Iterator[Saver]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = sqlite_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with SqliteSaver.from_conn_string(str(path)) as saver:
            saver.setup()
            yield saver
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        raise MemoryBackendError(f"Cannot use the SQLite store {path}: {exc}") from exc


@asynccontextmanager
async def _aopen_sqlite(settings: Settings) -> AsyncIterator[Saver]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = sqlite_path(settings)
    # Off the event loop: the dev server flags blocking calls in async code.
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    try:
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            await saver.setup()
            yield saver
    except sqlite3.DatabaseError as exc:
        raise MemoryBackendError(f"Cannot use the SQLite store {path}: {exc}") from exc


def _redis_saver_class() -> type[RedisSaver]:
    from langgraph.checkpoint.redis import RedisSaver

    class HistoryRedisSaver(RedisSaver):
        """RedisSaver whose ``list`` returns messages, not their serialised dicts.

        langgraph-checkpoint-redis 0.5.2 deserialises inline channel values in
        ``get_tuple`` and ``alist`` but not in the sync ``list``, so ``get_state_history``
        would hand out ``{"lc": 1, "type": "constructor", ...}`` dicts.
        """

        def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
            for item in super().list(config, **kwargs):
                values = item.checkpoint["channel_values"]
                item.checkpoint["channel_values"] = self._deserialize_channel_values(values)
                yield item

    return HistoryRedisSaver


def _open_redis(settings: Settings, stack: ExitStack) -> Saver:
    from redis import Redis

    url = settings.memory.redis_url
    client = Redis.from_url(url, **_client_options(settings))
    stack.callback(client.close)
    _probe(client, url)
    saver = _redis_saver_class()(redis_client=client, ttl=_ttl(settings))
    try:
        saver.setup()
    except Exception as exc:
        if is_unreachable(exc):
            raise RedisUnavailableError(f"Redis at {redact(url)} is unreachable: {exc}") from exc
        raise
    return saver


async def _aopen_redis(settings: Settings, stack: AsyncExitStack) -> Saver:
    from langgraph.checkpoint.redis.aio import AsyncRedisSaver
    from redis.asyncio import Redis

    url = settings.memory.redis_url
    client = Redis.from_url(url, **_client_options(settings))
    stack.push_async_callback(client.aclose)
    await _aprobe(client, url)
    saver = AsyncRedisSaver(redis_client=client, ttl=_ttl(settings))
    try:
        await saver.asetup()
    except Exception as exc:
        if is_unreachable(exc):
            raise RedisUnavailableError(f"Redis at {redact(url)} is unreachable: {exc}") from exc
        raise
    return saver


@contextmanager
def open_checkpointer(settings: Settings) -> Iterator[Saver | None]:
    """Open the configured checkpointer for synchronous use (CLI, notebooks, ``invoke``).

    Args:
        settings: ``memory.*`` chooses the backend, URL, fallback and TTL.

    Yields:
        The saver, or None for ``none`` (each turn stands alone).

    Raises:
        MemoryBackendError: The backend cannot be used and ``memory.fallback`` is
            ``none``, or the SQLite file is not a database.
    """
    name = store_name(settings)
    with ExitStack() as stack:
        if name == "none":
            yield None
        elif name == "memory":
            yield InMemorySaver()
        elif name == "sqlite":
            yield stack.enter_context(_open_sqlite(settings))
        else:
            fallback_ctx = (
                _open_sqlite(settings)
                if settings.memory.fallback == "sqlite"
                else _nullcontext_memory()
            )
            try:
                primary = _open_redis(settings, stack)
            except MemoryBackendError as exc:
                _warn_fallback(settings, exc)
                yield stack.enter_context(fallback_ctx)
                return
            if settings.memory.fallback == "none":
                yield primary
                return
            fallback = stack.enter_context(fallback_ctx)
            yield FallbackSaver(primary, fallback, settings=settings)


@asynccontextmanager
async def aopen_checkpointer(settings: Settings) -> AsyncIterator[Saver | None]:
    """Open the configured checkpointer for asyncio use (the LangGraph server, ``ainvoke``).

    Same choices and fallback as :func:`open_checkpointer`, with the async savers.
    """
    name = store_name(settings)
    async with AsyncExitStack() as stack:
        if name == "none":
            yield None
        elif name == "memory":
            yield InMemorySaver()
        elif name == "sqlite":
            yield await stack.enter_async_context(_aopen_sqlite(settings))
        else:
            fallback_ctx = (
                _aopen_sqlite(settings)
                if settings.memory.fallback == "sqlite"
                else _anullcontext_memory()
            )
            try:
                primary = await _aopen_redis(settings, stack)
            except MemoryBackendError as exc:
                _warn_fallback(settings, exc)
                yield await stack.enter_async_context(fallback_ctx)
                return
            if settings.memory.fallback == "none":
                yield primary
                return
            fallback = await stack.enter_async_context(fallback_ctx)
            yield FallbackSaver(primary, fallback, settings=settings)


@contextmanager
def _nullcontext_memory() -> Iterator[Saver]:
    yield InMemorySaver()


@asynccontextmanager
async def _anullcontext_memory() -> AsyncIterator[Saver]:
    yield InMemorySaver()


@asynccontextmanager
async def server_checkpointer() -> AsyncIterator[Saver]:
    """The checkpointer of the LangGraph server (``langgraph.json`` points here).

    The server shares threads with the CLI and notebooks through the configured store.
    With ``memory.backend`` ``none`` it still needs one, so it gets a volatile one.
    """
    async with aopen_checkpointer(get_settings()) as saver:
        yield saver if saver is not None else InMemorySaver()
