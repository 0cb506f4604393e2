"""Memory: threads, long-term memory per user, one turn at a time per thread.

Threads are LangGraph checkpoints (Redis, SQLite, in-process; the Redis fallback);
long-term memory is the LangGraph store; locks keep turns on a thread in order.
"""

from tools.memory.backends import (
    MODULES_HINT,
    MemoryBackendError,
    RedisModulesMissingError,
    RedisUnavailableError,
    Saver,
    redact,
    sqlite_path,
    store_name,
    store_path,
)
from tools.memory.checkpointers import aopen_checkpointer, open_checkpointer, server_checkpointer
from tools.memory.fallback import FallbackSaver
from tools.memory.locks import ThreadBusyError, ThreadLocks
from tools.memory.resources import OpenMemory, open_memory, thread_locks
from tools.memory.store import open_store, server_store
from tools.memory.threads import ThreadInfo, list_threads

__all__ = [
    "MODULES_HINT",
    "FallbackSaver",
    "MemoryBackendError",
    "OpenMemory",
    "RedisModulesMissingError",
    "RedisUnavailableError",
    "Saver",
    "ThreadBusyError",
    "ThreadInfo",
    "ThreadLocks",
    "aopen_checkpointer",
    "list_threads",
    "open_checkpointer",
    "open_memory",
    "open_store",
    "redact",
    "server_checkpointer",
    "server_store",
    "sqlite_path",
    "store_name",
    "store_path",
    "thread_locks",
]
