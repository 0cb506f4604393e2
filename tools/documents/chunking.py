"""Chunking: documents cut into chunks with stable ids, each keeping its page or section.

Chunks are cut with ``RecursiveCharacterTextSplitter`` (``retrieval.chunk_size`` /
``chunk_overlap``) within each document, so every chunk keeps its page or section. Chunk
ids are a hash of the source, the chunk's index in the file and its text, so the same file
always gives the same ids.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tools.documents.store import Chunk, MetadataValue

if TYPE_CHECKING:
    from langchain_core.documents import Document

logger = logging.getLogger(__name__)


def chunk_id(source: str, index: int, text: str) -> str:
    """A chunk's id: the same source, position and text always give the same id."""
    digest = hashlib.sha256(f"{source}\x00{index}\x00{text}".encode()).hexdigest()
    return digest[:32]


def chunking_key(chunk_size: int, chunk_overlap: int) -> str:
    """How a file was split, stored with its chunks: changing it re-indexes the file."""
    return f"{chunk_size}/{chunk_overlap}"


def split_documents(
    documents: Sequence[Document], chunk_size: int, chunk_overlap: int
) -> list[Document]:
    """Documents cut into chunks of at most ``chunk_size`` characters, metadata kept."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        # Sentence ends before spaces, kept at the end of the chunk they close.
        separators=["\n\n", "\n", ". ", "? ", "! ", "; ", " ", ""],
        keep_separator="end",
        strip_whitespace=True,
    )
    return [chunk for chunk in splitter.split_documents(documents) if chunk.page_content.strip()]


def chunk_documents(
    documents: Sequence[Document],
    source: str,
    *,
    chunk_size: int,
    chunk_overlap: int,
    metadata: Mapping[str, MetadataValue] | None = None,
) -> list[Chunk]:
    """A file's documents as chunks ready for :meth:`DocumentStore.replace_source`.

    Args:
        documents: What :func:`load_file` returned.
        source: The file's resolved path (part of every id).
        chunk_size: Characters per chunk at most.
        chunk_overlap: Characters shared by neighbouring chunks.
        metadata: Added to every chunk's metadata (the file's name, hash, ...).

    Returns:
        Chunks numbered in file order, with ``chunk``, ``page``/``section`` and ``kind``
        metadata; those with a section embed "section path + text".
    """
    chunks: list[Chunk] = []
    for index, piece in enumerate(split_documents(documents, chunk_size, chunk_overlap)):
        meta: dict[str, MetadataValue] = {
            key: value
            for key, value in piece.metadata.items()
            if isinstance(value, str | int | float | bool)
        }
        meta.update(metadata or {})
        meta["chunk"] = index
        text = piece.page_content
        section = meta.get("section")
        chunks.append(
            Chunk(
                id=chunk_id(source, index, text),
                text=text,
                metadata=meta,
                embed_text=f"{section}\n{text}" if section else None,
            )
        )
    return chunks
