"""Everything memory a process opens, from one decision: threads, long-term store, locks.

Redis is probed once (one warning when it is down), and the checkpointer, the store and
the thread locks all follow the same backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langgraph.store.base import BaseStore

from graph.settings import Settings
from tools.memory.backends import Saver, locks_dir, store_name
from tools.memory.checkpointers import checkpointer_on, redis_client
from tools.memory.locks import (
    FileThreadLocks,
    LocalThreadLocks,
    NoThreadLocks,
    RedisThreadLocks,
    ThreadLocks,
)
from tools.memory.store import store_on

if TYPE_CHECKING:
    from redis import Redis


@dataclass(frozen=True)
class OpenMemory:
    """The open memory of a process."""

    saver: Saver | None
    """Where threads are kept (None: each turn stands alone)."""
    store: BaseStore | None
    """Long-term memory per user (None: off)."""
    locks: ThreadLocks
    """One turn at a time per thread."""


def thread_locks(settings: Settings, client: Redis | None) -> ThreadLocks:
    """The thread locks that match where threads are kept."""
    name = store_name(settings)
    if name == "none":
        return NoThreadLocks()
    if name == "memory" or (
        name == "redis" and client is None and settings.memory.fallback == "memory"
    ):
        return LocalThreadLocks()
    local = FileThreadLocks(locks_dir(settings))
    if name == "redis" and client is not None:
        return RedisThreadLocks(client, settings.memory.lock_ttl, fallback=local)
    return local


@contextmanager
def open_memory(settings: Settings) -> Iterator[OpenMemory]:
    """Open the checkpointer, the long-term store and the thread locks together.

    Raises:
        MemoryBackendError: The backend cannot be used and ``memory.fallback`` is
            ``none``, or a SQLite file is not a database.
    """
    with ExitStack() as stack:
        client = redis_client(settings, stack)
        saver = stack.enter_context(checkpointer_on(settings, stack, client))
        store = stack.enter_context(store_on(settings, stack, client))
        yield OpenMemory(saver, store, thread_locks(settings, client))
