"""What the memory backends share: their names, errors, paths and Redis URL helpers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
)

from graph.settings import Settings

if TYPE_CHECKING:
    pass

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
