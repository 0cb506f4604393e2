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
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, closing, contextmanager
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.memory import InMemorySaver

from graph.settings import Settings, get_settings
from tools.memory.backends import (
    SQLITE_BUSY_TIMEOUT,
    MemoryBackendError,
    Saver,
    aprobe,
    aset_up_redis,
    aset_up_sqlite,
    client_options,
    make_parent,
    probe,
    set_up_redis,
    set_up_sqlite,
    sqlite_path,
    store_name,
    warn_fallback,
)
from tools.memory.fallback import FallbackSaver

if TYPE_CHECKING:
    from langgraph.checkpoint.redis import RedisSaver
    from langgraph.checkpoint.redis.aio import AsyncRedisSaver
    from redis import Redis

logger = logging.getLogger(__name__)


def _ttl(settings: Settings) -> dict[str, Any] | None:
    minutes = settings.memory.ttl_minutes
    return None if minutes is None else {"default_ttl": minutes, "refresh_on_read": True}


# --- opening savers -------------------------------------------------------------------


@contextmanager
def _open_sqlite(settings: Settings) -> Iterator[Saver]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = sqlite_path(settings)
    make_parent(path)
    try:
        # What SqliteSaver.from_conn_string opens, with a longer busy timeout than
        # sqlite3's 5 s, for processes writing turns at once.
        with closing(
            sqlite3.connect(str(path), check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT)
        ) as conn:
            saver = SqliteSaver(conn)
            set_up_sqlite(saver.setup, path)
            yield saver
    except sqlite3.DatabaseError as exc:
        raise MemoryBackendError(f"Cannot use the SQLite store {path}: {exc}") from exc


@asynccontextmanager
async def _aopen_sqlite(settings: Settings) -> AsyncIterator[Saver]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = sqlite_path(settings)
    # Off the event loop: the dev server flags blocking calls in async code.
    await asyncio.to_thread(make_parent, path)
    import aiosqlite

    try:
        async with aiosqlite.connect(str(path), timeout=SQLITE_BUSY_TIMEOUT) as conn:
            saver = AsyncSqliteSaver(conn)
            await aset_up_sqlite(saver.setup, path)
            yield saver
    except sqlite3.DatabaseError as exc:
        raise MemoryBackendError(f"Cannot use the SQLite store {path}: {exc}") from exc


def _redis_saver_class() -> type[RedisSaver]:
    from langgraph.checkpoint.redis import RedisSaver

    class HistoryRedisSaver(RedisSaver):
        """RedisSaver whose ``list`` returns messages, and whose ``put`` keeps the run's metadata.

        langgraph-checkpoint-redis 0.5.2 deserialises inline channel values in
        ``get_tuple`` and ``alist`` but not in the sync ``list``, so ``get_state_history``
        would hand out ``{"lc": 1, "type": "constructor", ...}`` dicts; and it drops the
        run config's metadata (see :func:`_with_run_metadata`).
        """

        def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
            for item in super().list(config, **kwargs):
                values = item.checkpoint["channel_values"]
                item.checkpoint["channel_values"] = self._deserialize_channel_values(values)
                yield item

        def put(
            self,
            config: RunnableConfig,
            checkpoint: Checkpoint,
            metadata: CheckpointMetadata,
            new_versions: ChannelVersions,
        ) -> RunnableConfig:
            return super().put(
                config, checkpoint, _with_run_metadata(config, metadata), new_versions
            )

    return HistoryRedisSaver


def _async_redis_saver_class() -> type[AsyncRedisSaver]:
    from langgraph.checkpoint.redis.aio import AsyncRedisSaver

    class OwnedAsyncRedisSaver(AsyncRedisSaver):
        """AsyncRedisSaver that keeps the run's metadata, as the sync one above does."""

        async def aput(
            self,
            config: RunnableConfig,
            checkpoint: Checkpoint,
            metadata: CheckpointMetadata,
            new_versions: ChannelVersions,
            stream_mode: str = "values",
        ) -> RunnableConfig:
            metadata = _with_run_metadata(config, metadata)
            return await super().aput(config, checkpoint, metadata, new_versions, stream_mode)

    return OwnedAsyncRedisSaver


def _with_run_metadata(config: RunnableConfig, metadata: CheckpointMetadata) -> CheckpointMetadata:
    # langgraph-checkpoint-redis 0.5.2 stores only the metadata LangGraph passes, while
    # the in-memory and SQLite savers add the run config's metadata (LangGraph's
    # get_checkpoint_metadata): without this, a thread's owner (``user_id``) was lost
    # on Redis, and with it the API's and the page's per-user threads.
    return get_checkpoint_metadata(config, metadata)


def connect_redis(settings: Settings, stack: ExitStack) -> Redis:
    """A client of the configured Redis, checked to answer and to have its modules.

    Raises:
        RedisUnavailableError: Redis does not answer.
        RedisModulesMissingError: It lacks RediSearch or RedisJSON.
    """
    from redis import Redis

    url = settings.memory.redis_address
    client = Redis.from_url(url, **client_options(settings))
    stack.callback(client.close)
    probe(client, url)
    return client


def redis_client(settings: Settings, stack: ExitStack, what: str = "") -> Redis | None:
    """The Redis client when Redis is configured and usable; None otherwise.

    A configured Redis that cannot be used is warned about once (the fallback takes
    over); with ``memory.fallback = "none"`` the warning raises instead.

    Raises:
        MemoryBackendError: Redis cannot be used and ``memory.fallback`` is ``none``.
    """
    if store_name(settings) != "redis":
        return None
    try:
        return connect_redis(settings, stack)
    except MemoryBackendError as exc:
        warn_fallback(settings, exc, what=what)
        return None


def redis_saver(settings: Settings, client: Redis) -> Saver:
    """The official Redis saver on ``client``, with its indexes set up.

    Raises:
        RedisUnavailableError: Redis stopped answering while setting up.
    """
    saver = _redis_saver_class()(redis_client=client, ttl=_ttl(settings))
    set_up_redis(saver.setup, settings)
    return saver


async def _aopen_redis(settings: Settings, stack: AsyncExitStack) -> Saver:
    from redis.asyncio import Redis

    url = settings.memory.redis_address
    client = Redis.from_url(url, **client_options(settings))
    stack.push_async_callback(client.aclose)
    await aprobe(client, url)
    saver = _async_redis_saver_class()(redis_client=client, ttl=_ttl(settings))
    await aset_up_redis(saver.asetup, settings)
    return saver


@contextmanager
def checkpointer_on(
    settings: Settings, stack: ExitStack, client: Redis | None
) -> Iterator[Saver | None]:
    """The checkpointer for ``settings``, on a Redis client opened already.

    ``client`` is None when Redis is not configured or did not answer: then the fallback.
    """
    name = store_name(settings)
    if name == "none":
        yield None
    elif name == "memory":
        yield InMemorySaver()
    elif name == "sqlite" or client is None:
        with _fallback_ctx(settings) if name == "redis" else _open_sqlite(settings) as saver:
            yield saver
    else:
        primary = redis_saver(settings, client)
        if settings.memory.fallback == "none":
            yield primary
            return
        fallback = stack.enter_context(_fallback_ctx(settings))
        yield FallbackSaver(primary, fallback, settings=settings)


def _fallback_ctx(settings: Settings) -> Any:
    return _open_sqlite(settings) if settings.memory.fallback == "sqlite" else _nullcontext_memory()


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
    with ExitStack() as stack:
        client = redis_client(settings, stack)
        with checkpointer_on(settings, stack, client) as saver:
            yield saver


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
                warn_fallback(settings, exc)
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
