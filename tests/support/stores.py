"""In-memory stand-ins for the stores: the document store (for the tests of ingest()) and a
long-term store whose backend can go away (for the page's failure tests)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import redis
from langgraph.store.memory import InMemoryStore

from graph.settings import Settings
from tools.documents.store import Chunk, DocumentStoreError, SourceInfo, WriteResult
from tools.memory import MemoryBackendError


class FlakyStore(InMemoryStore):
    """An in-memory long-term store whose backend is gone once ``failure`` is set."""

    failure: Exception | None = None

    def batch(self, ops: Any) -> Any:
        if self.failure is not None:
            raise self.failure
        return super().batch(ops)


STORE_DOWN = [
    redis.exceptions.ConnectionError("Error 111 connecting to localhost:6379"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    sqlite3.OperationalError("database is locked"),
    sqlite3.DatabaseError("database disk image is malformed"),
    MemoryBackendError("Redis at redis://localhost:6379 is unreachable"),
]
"""What a store raises when its backend went away, one of each kind the page must survive."""


class DictStore:
    """The part of DocumentStore that ingest() uses, in memory."""

    def __init__(self, settings: Settings, fail_on: str | None = None) -> None:
        self.settings = settings
        self.name = "test"
        self.chunks: dict[str, tuple[str, dict[str, Any]]] = {}
        self.embedded = 0
        self.fail_on = fail_on

    def open(self, *, create: bool = False) -> bool:
        return True

    def source_info(self, source: str) -> SourceInfo | None:
        metas = [m for _, m in self.chunks.values() if m["source"] == source]
        if not metas:
            return None
        return SourceInfo(
            source=source,
            name=str(metas[0]["name"]),
            chunks=len(metas),
            file_hash=str(metas[0]["file_hash"]),
            chunking=str(metas[0]["chunking"]),
        )

    def sources(self) -> list[SourceInfo]:
        names = sorted({str(m["source"]) for _, m in self.chunks.values()})
        infos = [self.source_info(source) for source in names]
        return [info for info in infos if info is not None]

    def remove(self, source: str) -> int:
        ids = [i for i, (_, m) in self.chunks.items() if m["source"] == source]
        for chunk_id_ in ids:
            del self.chunks[chunk_id_]
        return len(ids)

    def replace_source(
        self,
        source: str,
        chunks: Sequence[Chunk],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> WriteResult:
        if self.fail_on and source.endswith(self.fail_on):
            raise DocumentStoreError("disk full")
        old = {i for i, (_, m) in self.chunks.items() if m["source"] == source}
        for chunk in chunks:
            self.chunks[chunk.id] = (chunk.text, {**chunk.metadata, "source": source})
        self.embedded += len(chunks)
        if on_progress:
            on_progress(len(chunks))
        stale = old - {c.id for c in chunks}
        for chunk_id_ in stale:
            del self.chunks[chunk_id_]
        return WriteResult(len(chunks), len(stale))
