"""The LangGraph store that keeps long-term memory, with a vector index on our embeddings.

The backend follows the checkpointer's (:func:`~tools.memory.backends.store_name`):

- ``redis``: langgraph-checkpoint-redis's ``RedisStore`` (RediSearch vector index);
- ``sqlite``: langgraph-checkpoint-sqlite's ``SqliteStore`` in
  ``<data_dir>/memory/store.sqlite``; its vector search is an exact scan with sqlite-vec's
  ``vec_distance_cosine`` (no ANN index: a user's memories are hundreds or thousands of
  short texts). A Python whose ``sqlite3`` cannot load extensions (pyenv's default build,
  this machine's) gets the same distance functions as Python functions instead
  (:class:`VecConnection`), so the store works unchanged;
- ``memory``: ``InMemoryStore`` with the same index (the life of the process);
- ``none`` or ``long_term.enabled = false``: no store, so nothing is kept or recalled.

Every store embeds the ``text`` field of an item with all-MiniLM-L6-v2 (384 dimensions,
the model documents and routing use), through a small per-text cache: the message the
``recall`` node embedded to search is stored by ``remember`` without embedding it again.

When Redis is configured but down, the ``memory.fallback`` store is used (as for the
threads), and memories written there are copied into Redis by the next process that
finds Redis up.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, GetOp, IndexConfig, Item, Op, PutOp, Result
from langgraph.store.memory import InMemoryStore

from graph.settings import Settings, get_settings
from tools.memory.backends import (
    SQLITE_BUSY_TIMEOUT,
    MemoryBackendError,
    make_parent,
    set_up_redis,
    set_up_sqlite,
    store_name,
    store_path,
)
from tools.memory.checkpointers import redis_client
from tools.models.embeddings import DIMENSIONS, get_embeddings

if TYPE_CHECKING:
    from redis import Redis

logger = logging.getLogger(__name__)

INDEXED_FIELDS = ["text"]
"""The value field every memory is embedded and searched by."""


class CachedEmbeddings(Embeddings):
    """The shared embedding model behind a small cache keyed by text.

    The model loads on the first text that is not cached. MiniLM embeds a text the same
    way as a query or as a document, so one cache serves both.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors of ``texts`` (384 floats each, normalised), embedding only new ones."""
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            vectors = get_embeddings().embed_documents(todo)
            with self._lock:
                for text, vector in zip(todo, vectors, strict=True):
                    self._cache[text] = list(vector)
                    while len(self._cache) > self.size:
                        self._cache.popitem(last=False)
        with self._lock:
            found = []
            for text in texts:
                cached = self._cache.get(text)
                if cached is None:  # evicted by a concurrent call meanwhile
                    cached = list(get_embeddings().embed_query(text))
                else:
                    self._cache.move_to_end(text)
                found.append(cached)
            return found

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text."""
        return self.embed_documents([text])[0]


_EMBEDDINGS = CachedEmbeddings()


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    """Embed texts with the shared, cached model (an ``index.embed`` function)."""
    return _EMBEDDINGS.embed_documents(list(texts))


def index_config() -> IndexConfig:
    """The vector index every store gets: our embeddings, 384 dimensions, the text field."""
    return {"embed": _EMBEDDINGS, "dims": DIMENSIONS, "fields": list(INDEXED_FIELDS)}


def _cosine_distance(a: bytes, b: bytes) -> float:
    import numpy as np

    va, vb = np.frombuffer(a, dtype=np.float32), np.frombuffer(b, dtype=np.float32)
    norm = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return 1.0 - float(va @ vb) / norm if norm else 1.0


def _l2_distance(a: bytes, b: bytes) -> float:
    import numpy as np

    diff = np.frombuffer(a, dtype=np.float32) - np.frombuffer(b, dtype=np.float32)
    return float(np.linalg.norm(diff))


def _l1_distance(a: bytes, b: bytes) -> float:
    import numpy as np

    diff = np.frombuffer(a, dtype=np.float32) - np.frombuffer(b, dtype=np.float32)
    return float(np.abs(diff).sum())


class VecConnection(sqlite3.Connection):
    """A SQLite connection on which SqliteStore's vector search always works.

    SqliteStore loads the sqlite-vec extension for ``vec_distance_cosine`` (and the L2/L1
    distances). CPython built without ``--enable-loadable-sqlite-extensions`` has no
    ``enable_load_extension``; there (or when loading fails) the three functions are
    registered as Python functions over the same float32 blobs instead (about 5 us per
    stored vector).
    """

    def enable_load_extension(self, enabled: bool, /) -> None:
        """Allow loading extensions, where this Python can."""
        native = getattr(super(), "enable_load_extension", None)
        if native is not None:
            native(enabled)

    def load_extension(self, path: str, /, *, entrypoint: str | None = None) -> None:
        """Load sqlite-vec natively, or register its distance functions in Python."""
        native = getattr(super(), "load_extension", None)
        if native is not None:
            try:
                native(path)
                return
            except sqlite3.OperationalError as exc:
                logger.info("sqlite-vec did not load (%s); using Python distances", exc)
        for name, function in (
            ("vec_distance_cosine", _cosine_distance),
            ("vec_distance_L2", _l2_distance),
            ("vec_distance_L1", _l1_distance),
        ):
            self.create_function(name, 2, function, deterministic=True)


def _sqlite_store_class() -> type[BaseStore]:
    from langgraph.store.sqlite import SqliteStore

    class LocalSqliteStore(SqliteStore):
        """SqliteStore that also serves async callers (the dev server's store API).

        SqliteStore raises on its async methods; its connection is shared across threads
        behind a lock, so running ``batch`` in a worker thread is safe.
        """

        async def abatch(self, ops: Iterable[Op]) -> list[Result]:
            return await asyncio.get_running_loop().run_in_executor(None, self.batch, list(ops))

    return LocalSqliteStore


@contextmanager
def open_sqlite_store(settings: Settings) -> Iterator[BaseStore]:
    """The SQLite store of long-term memory (``<data_dir>/memory/store.sqlite``).

    Raises:
        MemoryBackendError: The file is not a SQLite database, or its folder cannot be
            created.
    """
    path = store_path(settings)
    make_parent(path)
    conn = sqlite3.connect(
        str(path),
        check_same_thread=False,
        isolation_level=None,
        timeout=SQLITE_BUSY_TIMEOUT,
        factory=VecConnection,
    )
    try:
        # SqliteStore (3.1.2) reads the fields to embed from "text_fields", not from the
        # documented "fields": without it, it embeds the whole JSON value of every item.
        index = {**index_config(), "text_fields": list(INDEXED_FIELDS)}
        store = _sqlite_store_class()(conn, index=index)  # type: ignore[call-arg]

        def setup() -> None:
            # Several processes write memories at once (one per CLI command): readers
            # must not block writers (WAL), and a writer waits for the file.
            conn.execute("PRAGMA journal_mode = WAL")
            store.setup()  # type: ignore[attr-defined]

        set_up_sqlite(setup, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise MemoryBackendError(f"Cannot use the SQLite store {path}: {exc}") from exc
    try:
        yield store
    finally:
        conn.close()


def redis_store(settings: Settings, client: Redis) -> BaseStore:
    """langgraph-checkpoint-redis's store on ``client``, with its vector index set up.

    Raises:
        RedisUnavailableError: Redis stopped answering while setting up.
    """
    from langgraph.store.redis import RedisStore

    store = RedisStore(client, index=index_config())
    set_up_redis(store.setup, settings)
    return store


@contextmanager
def store_on(
    settings: Settings, stack: ExitStack, client: Redis | None
) -> Iterator[BaseStore | None]:
    """The long-term store for ``settings``, on a Redis client opened already.

    ``client`` is None when Redis is not configured or did not answer: then the fallback.
    """
    name = store_name(settings)
    if not settings.long_term.enabled or name == "none":
        yield None
    elif name == "memory" or (name == "redis" and client is None and _fallback_in_memory(settings)):
        yield InMemoryStore(index=index_config())
    elif name == "sqlite" or client is None:
        with open_sqlite_store(settings) as store:
            yield store
    else:
        store = redis_store(settings, client)
        if settings.memory.fallback == "sqlite" and store_path(settings).is_file():
            with open_sqlite_store(settings) as local:
                copy_back(local, store)
        yield store


def _fallback_in_memory(settings: Settings) -> bool:
    return settings.memory.fallback != "sqlite"


def copy_back(local: BaseStore, remote: BaseStore, page: int = 500) -> int:
    """Move every memory of the local fallback store into Redis (after an outage).

    Items are re-embedded on the way (the vectors stay in their own stores); the newer of
    two items with the same key wins. Returns how many items were moved.
    """
    moved = 0
    while True:
        items = local.search(("memories",), limit=page)
        if not items:
            break
        found = remote.batch([GetOp(tuple(i.namespace), i.key) for i in items])
        existing = {(tuple(i.namespace), i.key): i for i in found if isinstance(i, Item)}
        puts: list[Op] = []
        for item in items:
            there = existing.get((tuple(item.namespace), item.key))
            if there is None or there.updated_at < item.updated_at:
                puts.append(PutOp(tuple(item.namespace), item.key, item.value))
        for put in puts:  # one by one: InMemoryStore fails on equal texts in one batch
            remote.batch([put])
        local.batch([PutOp(tuple(i.namespace), i.key, None) for i in items])
        moved += len(puts)
    if moved:
        logger.info("copied %d memories written while Redis was down back to Redis", moved)
    return moved


@contextmanager
def open_store(settings: Settings) -> Iterator[BaseStore | None]:
    """Open the configured long-term store on its own (``assistant memory ...``).

    Yields:
        The store, or None when long-term memory is off.

    Raises:
        MemoryBackendError: The backend cannot be used and ``memory.fallback`` is ``none``.
    """
    with ExitStack() as stack:
        client = None
        if settings.long_term.enabled:
            client = redis_client(settings, stack, what="long-term memory")
        with store_on(settings, stack, client) as store:
            yield store


@asynccontextmanager
async def server_store() -> AsyncIterator[BaseStore]:
    """The store of the LangGraph server (``langgraph.json`` points here).

    The same store as the CLI's, so the server and the CLI share memories. Opening and
    closing run in a worker thread (they block); the stores answer async calls too.
    With long-term memory off the server still needs a store: it gets a volatile one.
    """
    stack = ExitStack()
    settings = get_settings()

    def enter() -> BaseStore | None:
        return stack.enter_context(open_store(settings))

    store = await asyncio.to_thread(enter)
    try:
        yield store if store is not None else InMemoryStore()
    finally:
        await asyncio.to_thread(stack.close)
