"""Chunking: documents cut into chunks that the embedding model reads whole.

all-MiniLM-L6-v2 reads at most 256 word pieces of a text (``[CLS]`` and ``[SEP]``
included) and ignores the rest, so a chunk longer than that is searchable only by its
head: a fact on its last line is never found. Chunks are therefore measured in the
model's own word pieces (:func:`tools.models.embeddings.get_tokenizer`), not characters:
``RecursiveCharacterTextSplitter`` cuts each document (page or section) at paragraph,
line, sentence and word boundaries into pieces of at most ``retrieval.chunk_tokens``,
neighbours sharing about ``retrieval.chunk_overlap_tokens``. What is embedded is the
section's heading path followed by the chunk's text, and that whole text, special tokens
included, fits the window: the splitter's budget is the window minus the heading path, and
every chunk is counted again after the split (token counts of joined pieces can differ by
one from their sum) and cut further if needed.

Chunk ids are a hash of the source, the chunk's index in the file and its text, so the
same file always gives the same ids.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tools.documents.loaders import SECTION_SEPARATOR
from tools.documents.store import Chunk, MetadataValue
from tools.models.embeddings import MAX_TOKENS, TOKENIZER_LOCK, get_tokenizer

if TYPE_CHECKING:
    from langchain_core.documents import Document

logger = logging.getLogger(__name__)

# Sentence ends before spaces, kept at the end of the chunk they close.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]
# A heading path may take at most this share of the window; a longer one is shortened
# (outer headings first) so that the chunk keeps most of the window for its text.
PREFIX_SHARE = 0.25


@dataclass(frozen=True)
class TokenCounter:
    """Counts text in the embedding model's word pieces.

    Attributes:
        pieces: Word pieces of a text, without the special tokens.
        window: What the model reads at most, special tokens included.
        special: Special tokens the model adds to every text (``[CLS]``, ``[SEP]``).
    """

    pieces: Callable[[str], int]
    window: int
    special: int

    def fits(self, text: str) -> bool:
        """Whether the model reads ``text`` whole."""
        return self.pieces(text) + self.special <= self.window


def embedder_tokens() -> TokenCounter:
    """The counter of the shared embedding model (its tokenizer only; no weights load).

    Raises:
        EmbeddingModelError: The model's package is missing.
    """
    tokenizer = get_tokenizer()
    with TOKENIZER_LOCK:
        special = len(tokenizer.encode("").ids)

    def pieces(text: str) -> int:
        with TOKENIZER_LOCK:  # shared with every thread (see TOKENIZER_LOCK)
            return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return TokenCounter(pieces=pieces, window=MAX_TOKENS, special=special)


def chunk_id(source: str, index: int, text: str) -> str:
    """A chunk's id: the same source, position and text always give the same id."""
    digest = hashlib.sha256(f"{source}\x00{index}\x00{text}".encode()).hexdigest()
    return digest[:32]


def chunking_key(chunk_tokens: int, chunk_overlap_tokens: int) -> str:
    """How a file was split, stored with its chunks: changing it re-indexes the file.

    Chunks measured in characters (before word pieces) were stored as ``"800/120"``; the
    word-piece key differs from every one of those, so such files are split again.
    """
    return f"{chunk_tokens}/{chunk_overlap_tokens} wordpieces of {MAX_TOKENS}"


def embed_prefix(section: str | None, counter: TokenCounter) -> str:
    """The heading path embedded in front of a chunk's text (empty without a section).

    A path longer than :data:`PREFIX_SHARE` of the window loses its outer headings, then
    words at its start, until it fits.
    """
    if not section:
        return ""
    limit = int(counter.window * PREFIX_SHARE)
    parts = section.split(SECTION_SEPARATOR)
    while len(parts) > 1 and counter.pieces(SECTION_SEPARATOR.join(parts)) > limit:
        parts = parts[1:]
    words = SECTION_SEPARATOR.join(parts).split(" ")
    while len(words) > 1 and counter.pieces(" ".join(words)) > limit:
        words = words[1:]
    text = " ".join(words)
    while text and counter.pieces(text) > limit:  # one enormous word
        text = text[len(text) // 4 :]
    return f"{text}\n" if text else ""


def _split_text(text: str, size: int, overlap: int, counter: TokenCounter) -> list[str]:
    """``text`` cut into pieces of at most ``size`` word pieces (special tokens apart)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=min(overlap, size // 2),
        length_function=counter.pieces,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )
    return [piece for piece in splitter.split_text(text) if piece.strip()]


def _fitted(text: str, prefix: str, size: int, overlap: int, counter: TokenCounter) -> list[str]:
    """``text`` as pieces whose ``prefix + piece`` the model reads whole."""
    pieces: list[str] = []
    for piece in _split_text(text, size, overlap, counter):
        if counter.fits(prefix + piece):
            pieces.append(piece)
            continue
        # Rare: pieces counted apart add up to a little less than joined. Cut this one
        # again with the excess taken off the budget.
        excess = counter.pieces(prefix + piece) + counter.special - counter.window
        smaller = max(1, size - excess - 2)
        if smaller >= size:
            smaller = size - 1
        pieces.extend(_fitted(piece, prefix, smaller, min(overlap, smaller // 4), counter))
    return pieces


def split_documents(
    documents: Sequence[Document],
    chunk_tokens: int,
    chunk_overlap_tokens: int,
    counter: TokenCounter | None = None,
) -> list[Document]:
    """Documents cut into chunks the embedding model reads whole, metadata kept.

    Args:
        documents: Pages or sections; a ``section`` in the metadata is embedded in front
            of each of its chunks and counts against the window.
        chunk_tokens: Word pieces per chunk at most (the model's window bounds it too).
        chunk_overlap_tokens: Word pieces neighbouring chunks share, about.
        counter: How text is counted; None = the shared embedding model's tokenizer.

    Returns:
        The chunks, in order, as documents with their source document's metadata.
    """
    from langchain_core.documents import Document

    counter = counter or embedder_tokens()
    chunks: list[Document] = []
    for document in documents:
        section = document.metadata.get("section")
        prefix = embed_prefix(section if isinstance(section, str) else None, counter)
        budget = counter.window - counter.special - counter.pieces(prefix)
        size = max(1, min(chunk_tokens, budget))
        for piece in _fitted(document.page_content, prefix, size, chunk_overlap_tokens, counter):
            chunks.append(Document(page_content=piece, metadata=dict(document.metadata)))
    return chunks


def chunk_documents(
    documents: Sequence[Document],
    source: str,
    *,
    chunk_tokens: int,
    chunk_overlap_tokens: int,
    metadata: Mapping[str, MetadataValue] | None = None,
    counter: TokenCounter | None = None,
) -> list[Chunk]:
    """A file's documents as chunks ready for :meth:`DocumentStore.replace_source`.

    Args:
        documents: What :func:`load_file` returned.
        source: The file's resolved path (part of every id).
        chunk_tokens: Word pieces per chunk at most.
        chunk_overlap_tokens: Word pieces shared by neighbouring chunks.
        metadata: Added to every chunk's metadata (the file's name, hash, ...).
        counter: How text is counted; None = the shared embedding model's tokenizer.

    Returns:
        Chunks numbered in file order, with ``chunk``, ``page``/``section`` and ``kind``
        metadata; those with a section embed "heading path + text", and every embedded
        text fits the model's window.
    """
    counter = counter or embedder_tokens()
    chunks: list[Chunk] = []
    pieces = split_documents(documents, chunk_tokens, chunk_overlap_tokens, counter)
    for index, piece in enumerate(pieces):
        meta: dict[str, MetadataValue] = {
            key: value
            for key, value in piece.metadata.items()
            if isinstance(value, str | int | float | bool)
        }
        meta.update(metadata or {})
        meta["chunk"] = index
        text = piece.page_content
        section = meta.get("section")
        prefix = embed_prefix(section if isinstance(section, str) else None, counter)
        chunks.append(
            Chunk(
                id=chunk_id(source, index, text),
                text=text,
                metadata=meta,
                embed_text=f"{prefix}{text}" if prefix else None,
            )
        )
    return chunks
