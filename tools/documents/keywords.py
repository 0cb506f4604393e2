"""The keyword half of hybrid search: BM25 over the chunks, with SQLite's FTS5.

Vectors find passages about the same thing; they are weak on bare names and part numbers
("AF-CB20", "Maureen Okafor"), which the embedding model barely reads. A keyword index
finds those. It is SQLite's full-text engine FTS5 (the ``sqlite3`` module of the standard
library) with its built-in ``bm25()`` ranking: an inverted index, so a query costs what its
terms' posting lists cost, about 1 ms at 10,000 chunks.

Text is analysed here, the same way for chunks and queries (:func:`keywords`): folded
(NFKC, case-folded, accents off), split into letter-and-digit words, English stop words
dropped, and every identifier written with separators ("AB-1000-A", "R5/S3", "1,284.50")
also kept joined ("ab1000a"), so that it matches however it is typed. FTS5 then only splits
at the spaces.

The index is held in memory and derived from the Chroma collection, which stays the one
source of truth: :class:`~tools.documents.store.DocumentStore` builds it from the stored
chunks on first use, applies its own writes to it, and rebuilds it when another process
has written (see ``DocumentStore._refresh``). Search results carry chunk ids only; their
text always comes from Chroma.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tools.text import fold, strip_accents

STOPWORDS_FILE = Path(__file__).with_name("stopwords.txt")

_WORD = re.compile(r"[^\W_]+")
# Words joined by separators, e.g. part numbers and figures: AB-1000-A, R5/S3, 1,284.50.
_COMPOUND = re.compile(r"[^\W_]+(?:[-/.,:+][^\W_]+)+")
_SEPARATORS = re.compile(r"[-/.,:+]")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """English function words that carry no topic (``stopwords.txt``, one per line)."""
    lines = STOPWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w for line in lines if (w := line.split("#", 1)[0].strip()))


def keywords(text: str) -> list[str]:
    """The words of ``text`` that the keyword index compares, in order (with repeats).

    Folded (NFKC, case-folded, accents off), split into runs of letters and digits, stop
    words dropped; an identifier with separators and at least one digit ("AF-CB20",
    "12.34") adds its joined form ("afcb20", "1234") after its parts.

    Args:
        text: A chunk or a query.

    Returns:
        The keywords; empty when the text has only stop words or punctuation.
    """
    folded = strip_accents(fold(text))
    skip = stopwords()
    found: list[str] = []
    position = 0
    for compound in _COMPOUND.finditer(folded):
        found.extend(w for w in _WORD.findall(folded[position : compound.start()]) if w not in skip)
        found.extend(w for w in _WORD.findall(compound.group()) if w not in skip)
        if any(c.isdigit() for c in compound.group()):
            found.append(_SEPARATORS.sub("", compound.group()))
        position = compound.end()
    found.extend(w for w in _WORD.findall(folded[position:]) if w not in skip)
    return found


@dataclass(frozen=True)
class KeywordHit:
    """A chunk that shares words with the query, and its BM25 score (higher is better)."""

    id: str
    score: float


class KeywordIndex:
    """BM25 over one collection's chunks, in an in-memory SQLite FTS5 table.

    Thread-safe (one lock); rows are keyed by chunk id. ``generation`` records which state
    of the store the index reflects, for the store to tell when to rebuild it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.build_lock = threading.Lock()
        """Held by the one thread that (re)builds the index from the store."""
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        # The text is analysed already: FTS5 only splits at spaces (unicode61 does, and
        # finds nothing else to split in runs of letters and digits).
        self._db.execute(
            "CREATE VIRTUAL TABLE chunks USING fts5("
            "words, tokenize='unicode61 remove_diacritics 0')"
        )
        self._rows: dict[str, int] = {}  # chunk id -> FTS5 rowid
        self._ids: dict[int, str] = {}  # and back
        self._next_row = 1
        self.generation: object = None
        self.built = False

    def __len__(self) -> int:
        """How many chunks are indexed."""
        with self._lock:
            return len(self._rows)

    def reset(self, chunks: Iterable[tuple[str, str]], generation: object) -> None:
        """Replace the whole index with ``chunks`` (id, text), made from ``generation``."""
        with self._lock:
            self._db.execute("DELETE FROM chunks")
            self._rows.clear()
            self._ids.clear()
            self._add(chunks)
            self.generation = generation
            self.built = True

    def upsert(self, chunks: Iterable[tuple[str, str]]) -> None:
        """Add chunks (id, text); a chunk already indexed is replaced."""
        with self._lock:
            self._add(chunks)

    def delete(self, ids: Iterable[str]) -> None:
        """Forget chunks by id (unknown ids are ignored)."""
        with self._lock:
            rows = [(row,) for i in ids if (row := self._rows.pop(i, None)) is not None]
            for (row,) in rows:
                del self._ids[row]
            self._db.executemany("DELETE FROM chunks WHERE rowid = ?", rows)

    def search(self, query: str, limit: int) -> list[KeywordHit]:
        """The chunks sharing the most telling words with ``query``, best first.

        Args:
            query: What the user asked.
            limit: How many chunks at most.

        Returns:
            Chunks with at least one of the query's keywords, by BM25 score; empty when
            the query has no keywords.
        """
        terms = sorted(set(keywords(query)))
        if not terms or limit < 1:
            return []
        # Keywords are runs of letters and digits: quoting makes each one a plain term.
        expression = " OR ".join(f'"{term}"' for term in terms)
        with self._lock:
            rows = self._db.execute(
                "SELECT rowid, bm25(chunks) FROM chunks WHERE chunks MATCH ? "
                "ORDER BY bm25(chunks) LIMIT ?",
                (expression, limit),
            ).fetchall()
            # FTS5's bm25() is negated so that ascending order is best first.
            return [KeywordHit(self._ids[row], -score) for row, score in rows]

    def _add(self, chunks: Iterable[tuple[str, str]]) -> None:
        batch: list[tuple[int, str]] = []
        stale: list[tuple[int]] = []
        for chunk_id, text in chunks:
            old = self._rows.get(chunk_id)
            if old is not None:
                stale.append((old,))
                del self._ids[old]
            self._rows[chunk_id] = self._next_row
            self._ids[self._next_row] = chunk_id
            batch.append((self._next_row, " ".join(keywords(text))))
            self._next_row += 1
        self._db.executemany("DELETE FROM chunks WHERE rowid = ?", stale)
        self._db.executemany("INSERT INTO chunks(rowid, words) VALUES (?, ?)", batch)


def contains_all(query: str, text: str) -> bool:
    """Whether every keyword of ``query`` is among the keywords of ``text`` (not vacuous).

    A passage that holds every keyword of a short query ("Maureen Okafor", "AF-CB20")
    is about it whatever its cosine similarity, which for bare names is often low.
    """
    wanted = set(keywords(query))
    return bool(wanted) and wanted <= set(keywords(text))
