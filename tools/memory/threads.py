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
    newest: str = ""
    """A mark of its newest checkpoint (its id; on Redis its time stamp): a new checkpoint
    changes ``(checkpoints, newest)``, so a reader can keep what it read of a thread until
    then (a thread deleted and written again has new ids too)."""


def list_threads(saver: Saver) -> list[ThreadInfo]:
    """The threads a saver holds, most checkpoints first.

    SQLite and Redis are asked directly (one query, no checkpoint is read); other savers
    are walked.
    """
    if isinstance(saver, FallbackSaver):
        if saver.failed_over:
            return list_threads(saver.fallback)
        # Threads written to the fallback during an outage are threads too (they move
        # back to Redis when next read).
        merged: dict[str, tuple[int, str]] = {}
        for info in [*list_threads(saver.primary), *list_threads(saver.fallback)]:
            count, newest = merged.get(info.thread_id, (0, ""))
            merged[info.thread_id] = (count + info.checkpoints, f"{newest} {info.newest}".strip())
        return _sorted(merged)
    counts: dict[str, tuple[int, str]] = {}
    try:
        from langgraph.checkpoint.redis import RedisSaver
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:  # pragma: no cover - both are dependencies
        RedisSaver = SqliteSaver = None  # type: ignore[assignment,misc]
    if SqliteSaver is not None and isinstance(saver, SqliteSaver):
        with saver.cursor(transaction=False) as cur:
            # Checkpoint ids are UUIDv6, ordered by time as text (the saver's own
            # get_tuple takes the greatest as the newest).
            cur.execute(
                "SELECT thread_id, COUNT(*), MAX(checkpoint_id) FROM checkpoints GROUP BY thread_id"
            )
            counts = {str(tid): (int(n), str(top)) for tid, n, top in cur.fetchall()}
    elif RedisSaver is not None and isinstance(saver, RedisSaver):
        counts = _redis_thread_counts(saver)
    else:
        for item in saver.list(None):
            tid = str(item.config["configurable"]["thread_id"])
            count, newest = counts.get(tid, (0, ""))
            checkpoint_id = str(item.config["configurable"].get("checkpoint_id", ""))
            counts[tid] = (count + 1, max(newest, checkpoint_id))
    return _sorted(counts)


def _sorted(counts: dict[str, tuple[int, str]]) -> list[ThreadInfo]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [ThreadInfo(t, n, newest) for t, (n, newest) in ordered]


def _redis_thread_counts(saver: Any) -> dict[str, tuple[int, str]]:
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
        "REDUCE",
        "MAX",
        "1",
        "@checkpoint_ts",
        "AS",
        "newest",
        "LIMIT",
        "0",
        "100000",
    )
    # RESP3 answers a map with "results"; RESP2 a flat list after the total.
    if isinstance(reply, dict):
        rows = [r.get(b"extra_attributes", {}) for r in reply.get(b"results", [])]
    else:
        rows = [dict(zip(row[::2], row[1::2], strict=False)) for row in reply[1:]]
    counts: dict[str, tuple[int, str]] = {}
    for fields in rows:
        tid, n = fields.get(b"thread_id"), fields.get(b"n", 0)
        newest = fields.get(b"newest", b"")
        if tid is not None:
            counts[_text(tid)] = (int(n), _text(newest))
    return counts


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
