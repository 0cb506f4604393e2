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
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.memory import InMemorySaver

from graph.settings import Settings, get_settings

if TYPE_CHECKING:
    from langgraph.checkpoint.redis import RedisSaver

logger = logging.getLogger(__name__)

Saver = BaseCheckpointSaver[str]
StoreName = Literal["redis", "sqlite", "memory", "none"]

MODULES_HINT = (
    "the official Redis checkpointer needs the RediSearch and RedisJSON modules: run "
    "Redis 8 or newer, or Redis Stack (for development: `make redis-up`)"
)


class MemoryBackendError(RuntimeError):
    """The configured memory backend cannot be used; the message says why and what to do."""


class RedisUnavailableError(MemoryBackendError):
    """Redis did not answer (refused, timed out, or the connection broke)."""


class RedisModulesMissingError(MemoryBackendError):
    """The server answers but lacks RediSearch or RedisJSON (a plain Redis 7, say)."""


def store_name(settings: Settings) -> StoreName:
    """The configured backend, with ``memory.enabled = false`` meaning ``none``."""
    return settings.memory.backend if settings.memory.enabled else "none"


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of the ``sqlite`` backend and of the Redis fallback."""
    return settings.memory.sqlite_path or settings.data_dir / "memory" / "checkpoints.sqlite"


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


# --- failing over in the middle of a conversation ---------------------------------------

_Latest = tuple[RunnableConfig, Checkpoint, CheckpointMetadata, ChannelVersions]


class FallbackSaver(BaseCheckpointSaver[str]):
    """A Redis saver that moves to a local saver, for good, when Redis stops answering.

    It remembers the newest checkpoint of the threads this process has read or written
    (a bounded number), and writes them into the fallback store when it switches, so a
    conversation goes on where it was. Use the sync or the async methods, matching the
    two savers it wraps.
    """

    def __init__(
        self, primary: Saver, fallback: Saver, *, settings: Settings, remember: int = 1024
    ) -> None:
        super().__init__(serde=primary.serde)
        self.primary = primary
        self.fallback = fallback
        self.failed_over = False
        self._url = redact(settings.memory.redis_url)
        self._where = (
            f"the SQLite store {sqlite_path(settings)}"
            if settings.memory.fallback == "sqlite"
            else "process memory"
        )
        self._remember = remember
        self._latest: OrderedDict[tuple[str, str], _Latest] = OrderedDict()
        self._lock = threading.Lock()  # guards _latest
        self._switch_lock = threading.Lock()
        self._aswitch_lock = asyncio.Lock()

    @property
    def active(self) -> Saver:
        """The saver in use now."""
        return self.fallback if self.failed_over else self.primary

    # Bookkeeping -----------------------------------------------------------------------

    def _note(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        meta: CheckpointMetadata,
        versions: ChannelVersions,
    ) -> None:
        conf = config["configurable"]
        key = (str(conf["thread_id"]), str(conf.get("checkpoint_ns", "")))
        with self._lock:
            self._latest[key] = (config, checkpoint, meta, versions)
            self._latest.move_to_end(key)
            while len(self._latest) > self._remember:
                self._latest.popitem(last=False)

    def _note_tuple(self, config: RunnableConfig, found: CheckpointTuple | None) -> None:
        # Only "the latest checkpoint of a thread" reads are worth carrying over.
        if found is not None and not config["configurable"].get("checkpoint_id"):
            parent = found.parent_config or {
                "configurable": {**found.config["configurable"], "checkpoint_id": None}
            }
            versions = found.checkpoint["channel_versions"]
            self._note(parent, found.checkpoint, found.metadata, versions)

    def _carried(self, exc: BaseException) -> list[_Latest]:
        """What to carry over, with the one warning of the switch."""
        with self._lock:
            carried = list(self._latest.values())
        logger.warning(
            "Redis at %s stopped answering (%s); continuing on %s with the %d thread(s) "
            "this process had open. New turns stay there until the assistant restarts.",
            self._url,
            exc,
            self._where,
            len(carried),
        )
        return carried

    # The flag flips only after the carry-over, and callers that fail meanwhile wait on
    # the switch lock: none of them may read a thread from the fallback before it is there.

    def _fail_over(self, exc: BaseException) -> None:
        if not is_unreachable(exc):
            raise exc
        with self._switch_lock:
            if self.failed_over:
                return
            for config, checkpoint, meta, versions in self._carried(exc):
                have = self.fallback.get_tuple(_latest_of(config))
                if have is None or have.checkpoint["id"] < checkpoint["id"]:
                    self.fallback.put(config, checkpoint, meta, versions)
            self.failed_over = True

    async def _afail_over(self, exc: BaseException) -> None:
        if not is_unreachable(exc):
            raise exc
        async with self._aswitch_lock:
            if self.failed_over:
                return
            for config, checkpoint, meta, versions in self._carried(exc):
                have = await self.fallback.aget_tuple(_latest_of(config))
                if have is None or have.checkpoint["id"] < checkpoint["id"]:
                    await self.fallback.aput(config, checkpoint, meta, versions)
            self.failed_over = True

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self.failed_over:
            try:
                return getattr(self.primary, name)(*args, **kwargs)
            except Exception as exc:
                self._fail_over(exc)
        return getattr(self.fallback, name)(*args, **kwargs)

    async def _acall(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self.failed_over:
            try:
                return await getattr(self.primary, name)(*args, **kwargs)
            except Exception as exc:
                await self._afail_over(exc)
        return await getattr(self.fallback, name)(*args, **kwargs)

    # The saver interface -----------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch a checkpoint tuple (the latest of the thread unless an id is given)."""
        found: CheckpointTuple | None = self._call("get_tuple", config)
        self._note_tuple(config, found)
        return found

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        found: CheckpointTuple | None = await self._acall("aget_tuple", config)
        self._note_tuple(config, found)
        return found

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List checkpoints, newest first."""
        if not self.failed_over:
            started = False
            try:
                for item in self.primary.list(config, filter=filter, before=before, limit=limit):
                    started = True
                    yield item
                return
            except Exception as exc:
                if started:  # half a listing from each store would be wrong; say so
                    raise
                self._fail_over(exc)
        yield from self.fallback.list(config, filter=filter, before=before, limit=limit)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        if not self.failed_over:
            started = False
            try:
                async for item in self.primary.alist(
                    config, filter=filter, before=before, limit=limit
                ):
                    started = True
                    yield item
                return
            except Exception as exc:
                if started:
                    raise
                await self._afail_over(exc)
        async for item in self.fallback.alist(config, filter=filter, before=before, limit=limit):
            yield item

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint."""
        self._note(config, checkpoint, metadata, new_versions)
        saved: RunnableConfig = self._call("put", config, checkpoint, metadata, new_versions)
        return saved

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        self._note(config, checkpoint, metadata, new_versions)
        saved: RunnableConfig = await self._acall(
            "aput", config, checkpoint, metadata, new_versions
        )
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the pending writes of a task."""
        self._call("put_writes", config, writes, task_id, task_path)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        await self._acall("aput_writes", config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread from both stores (the fallback may hold a copy)."""
        self._forget(thread_id)
        self._call("delete_thread", thread_id)
        if not self.failed_over:
            self.fallback.delete_thread(thread_id)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        self._forget(thread_id)
        await self._acall("adelete_thread", thread_id)
        if not self.failed_over:
            await self.fallback.adelete_thread(thread_id)

    def _forget(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._latest if k[0] == str(thread_id)]:
                del self._latest[key]

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Next channel version, in the format both wrapped savers share."""
        return self.active.get_next_version(current, channel)

    def with_allowlist(self, extra_allowlist: Any) -> FallbackSaver:
        """A clone whose wrapped savers use the derived msgpack allowlist."""
        clone = super().with_allowlist(extra_allowlist)
        assert isinstance(clone, FallbackSaver)
        if clone is not self:
            clone.primary = self.primary.with_allowlist(extra_allowlist)
            clone.fallback = self.fallback.with_allowlist(extra_allowlist)
        return clone


def _latest_of(config: RunnableConfig) -> RunnableConfig:
    conf = config["configurable"]
    return {
        "configurable": {
            "thread_id": conf["thread_id"],
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
        }
    }


# --- thread management ----------------------------------------------------------------


@dataclass(frozen=True)
class ThreadInfo:
    """One stored thread."""

    thread_id: str
    checkpoints: int


def list_threads(saver: Saver) -> list[ThreadInfo]:
    """The threads a saver holds, most checkpoints first.

    SQLite and Redis are asked directly (one query); other savers are walked.
    """
    if isinstance(saver, FallbackSaver):
        return list_threads(saver.active)
    counts: dict[str, int] = {}
    try:
        from langgraph.checkpoint.redis import RedisSaver
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:  # pragma: no cover - both are dependencies
        RedisSaver = SqliteSaver = None  # type: ignore[assignment,misc]
    if SqliteSaver is not None and isinstance(saver, SqliteSaver):
        with saver.cursor(transaction=False) as cur:
            cur.execute("SELECT thread_id, COUNT(*) FROM checkpoints GROUP BY thread_id")
            counts = {str(tid): int(n) for tid, n in cur.fetchall()}
    elif RedisSaver is not None and isinstance(saver, RedisSaver):
        counts = _redis_thread_counts(saver)
    else:
        for item in saver.list(None):
            tid = str(item.config["configurable"]["thread_id"])
            counts[tid] = counts.get(tid, 0) + 1
    return [ThreadInfo(t, n) for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _redis_thread_counts(saver: Any) -> dict[str, int]:
    index = saver.checkpoints_index.name
    # Thread ids are stored as tags; the search index groups them in one round trip.
    reply = saver._redis.execute_command(
        "FT.AGGREGATE",
        index,
        "*",
        "LOAD",
        "1",
        "@thread_id",
        "GROUPBY",
        "1",
        "@thread_id",
        "REDUCE",
        "COUNT",
        "0",
        "AS",
        "n",
        "LIMIT",
        "0",
        "100000",
    )
    # RESP3 answers a map with "results"; RESP2 a flat list after the total.
    if isinstance(reply, dict):
        rows = [r.get(b"extra_attributes", {}) for r in reply.get(b"results", [])]
    else:
        rows = [dict(zip(row[::2], row[1::2], strict=False)) for row in reply[1:]]
    counts: dict[str, int] = {}
    for fields in rows:
        tid, n = fields.get(b"thread_id"), fields.get(b"n", 0)
        if tid is not None:
            counts[tid.decode() if isinstance(tid, bytes) else str(tid)] = int(n)
    return counts
