"""Memory: LangGraph checkpointers (Redis, SQLite, in-process), the Redis fallback, threads."""

from tools.memory.backends import (
    MODULES_HINT,
    MemoryBackendError,
    RedisModulesMissingError,
    RedisUnavailableError,
    Saver,
    redact,
    sqlite_path,
    store_name,
)
from tools.memory.checkpointers import aopen_checkpointer, open_checkpointer, server_checkpointer
from tools.memory.fallback import FallbackSaver
from tools.memory.threads import ThreadInfo, list_threads

__all__ = [
    "MODULES_HINT",
    "FallbackSaver",
    "MemoryBackendError",
    "RedisModulesMissingError",
    "RedisUnavailableError",
    "Saver",
    "ThreadInfo",
    "aopen_checkpointer",
    "list_threads",
    "open_checkpointer",
    "redact",
    "server_checkpointer",
    "sqlite_path",
    "store_name",
]
