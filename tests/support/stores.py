"""An in-memory stand-in for the document store, for the tests of ingest()."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from graph.settings import Settings
from tools.documents.store import Chunk, DocumentStoreError, SourceInfo, WriteResult


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
