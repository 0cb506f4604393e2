"""Thread management: which threads a saver holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tools.memory.backends import Saver
from tools.memory.fallback import FallbackSaver

logger = logging.getLogger(__name__)

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
        if saver.failed_over:
            return list_threads(saver.fallback)
        # Threads written to the fallback during an outage are threads too (they move
        # back to Redis when next read).
        merged: dict[str, int] = {}
        for info in [*list_threads(saver.primary), *list_threads(saver.fallback)]:
            merged[info.thread_id] = merged.get(info.thread_id, 0) + info.checkpoints
        return _sorted(merged)
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
    return _sorted(counts)


def _sorted(counts: dict[str, int]) -> list[ThreadInfo]:
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
