"""Ingestion: the user's files, loaded, split into chunks and written to the document store.

Loaders turn a file into LangChain ``Document`` s: one per page for PDFs (``page``,
1-based), one per heading section for Markdown and HTML (``section``, the heading path
such as ``"Install > Linux"``), one for plain text. Chunks are cut within each of those
(so every chunk keeps its page or section) to fit the embedding model's window, measured
in its own word pieces (``retrieval.chunk_tokens``/``chunk_overlap_tokens``; see
:mod:`tools.documents.chunking`).

Chunk ids are a hash of the source, the chunk's index in the file and its text, so the
same file always gives the same ids. A file whose bytes (SHA-256) and chunking settings
are what the store already holds is not loaded or embedded again; a changed one
replaces its chunks (an interrupted write counts as changed).

Files deleted from disk keep their chunks until they are removed: ``prune`` (``assistant
ingest --prune``) removes the stored files under the given paths that no longer exist.

A file that cannot be used never stops a batch: it is *skipped* when there is nothing
wrong with it but nothing to index (empty, binary, an unsupported type in a folder, a
PDF without a text layer) or it is over 200 MB (``loaders.MAX_FILE_BYTES``; it is not
read), and *failed* when it is broken or cannot be read (a corrupt or encrypted PDF, no
such path, no permission, a path that is not UTF-8). A stored file that now has nothing
to index loses its chunks; one that now fails to load, or has grown over the limit, keeps
them.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.documents.store import DocumentStore, DocumentStoreError
from tools.guardrails.injection import inspect as inspect_passage
from tools.text import is_utf8

if TYPE_CHECKING:
    pass

from tools.documents.chunking import chunk_documents, chunking_key
from tools.documents.loaders import (
    BadFile,
    SkippedFile,
    file_sha256,
    kind_of,
    load_bytes,
    read_bytes,
)

logger = logging.getLogger(__name__)

# --- walking and the batch -----------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    """A file that was written: ``chunks`` new ones, ``removed`` old ones dropped."""

    path: str
    chunks: int
    removed: int = 0


@dataclass(frozen=True)
class FileProblem:
    """A file (or path) that was skipped or failed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class FlaggedFile:
    """A file written with passages that give orders to the assistant (prompt injection).

    Its chunks are stored as they are; when one is quoted to the model its orders are cut
    out (tools/guardrails/injection.py, ``safety.flagged_passages``).
    """

    path: str
    chunks: int
    excerpt: str


@dataclass
class IngestReport:
    """What one :func:`ingest` call did."""

    collection: str
    flagged: list[FlaggedFile] = field(default_factory=list)
    added: list[FileResult] = field(default_factory=list)
    replaced: list[FileResult] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)
    failed: list[FileProblem] = field(default_factory=list)
    pruned: list[FileResult] = field(default_factory=list)
    """Stored files no longer on disk whose chunks were removed (``removed`` chunks)."""
    seconds: float = 0.0

    @property
    def chunks_written(self) -> int:
        """Chunks embedded and written (added and replaced files)."""
        return sum(f.chunks for f in (*self.added, *self.replaced))

    @property
    def files_seen(self) -> int:
        """Every file and path this batch looked at."""
        return (
            len(self.added)
            + len(self.replaced)
            + len(self.unchanged)
            + len(self.skipped)
            + len(self.failed)
        )

    @property
    def all_failed(self) -> bool:
        """True when every file and path of the batch failed (skipped ones did not)."""
        return bool(self.failed) and len(self.failed) == self.files_seen

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-friendly), with the totals."""
        return {
            **asdict(self),
            "chunks_written": self.chunks_written,
            "files_seen": self.files_seen,
        }


@dataclass(frozen=True)
class IngestProgress:
    """Where a batch is: passed to ``on_progress`` after each file and chunk batch."""

    files_done: int
    files_total: int
    chunks_done: int
    current: str | None


NOT_UTF8_PATH = "its path is not UTF-8 text, which the store cannot keep: rename it"
"""Why a file whose name (or a folder's above it) is in another encoding is not stored."""


@dataclass
class _Plan:
    files: list[tuple[Path, str | None]] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)
    failed: list[FileProblem] = field(default_factory=list)


def collect_files(paths: Iterable[str | Path]) -> _Plan:
    """The files a batch will load, and the paths it already knows it cannot use.

    Folders are walked recursively (sorted, symlinked folders not followed, hidden
    entries ignored); in them only the supported extensions count, others are skipped
    as "unsupported type". A file named explicitly is loaded whatever its extension
    (unknown ones as text). The same file reached twice is loaded once.
    """
    plan = _Plan()
    seen: set[Path] = set()

    def add(path: Path, kind: str | None) -> None:
        if not is_utf8(str(path.resolve())):
            plan.failed.append(FileProblem(str(path), NOT_UTF8_PATH))
            return
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            plan.files.append((path, kind))

    for given in paths:
        path = Path(given).expanduser()
        if _is_symlink_loop(path):
            plan.failed.append(FileProblem(str(given), "symbolic link loop"))
        elif not path.exists():
            reason = "broken symbolic link" if path.is_symlink() else "no such file or folder"
            plan.failed.append(FileProblem(str(given), reason))
        elif path.is_dir():
            _walk(path, plan, add)
        elif not path.is_file():
            plan.skipped.append(FileProblem(str(path), "not a regular file"))
        else:
            add(path, kind_of(path))
    return plan


def _is_symlink_loop(path: Path) -> bool:
    # A link that leads back to itself (self -> self, a -> b -> a) is neither missing nor
    # of any type: say what it is.
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _walk(folder: Path, plan: _Plan, add: Callable[[Path, str | None], None]) -> None:
    def unreadable(exc: OSError) -> None:
        where = exc.filename or str(folder)
        plan.failed.append(FileProblem(str(where), f"cannot read the folder: {exc.strerror}"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            kind = kind_of(path)
            if _is_symlink_loop(path):
                plan.skipped.append(FileProblem(str(path), "symbolic link loop"))
            elif kind is None:
                what = f"unsupported type ({path.suffix})" if path.suffix else "no extension"
                plan.skipped.append(FileProblem(str(path), what))
            elif not path.is_file():
                # The same words as for a path named on the command line.
                reason = "broken symbolic link" if not path.exists() else "not a regular file"
                plan.skipped.append(FileProblem(str(path), reason))
            else:
                add(path, kind)


def ingest(
    store: DocumentStore,
    paths: Iterable[str | Path],
    *,
    on_progress: Callable[[IngestProgress], None] | None = None,
    prune: bool = False,
    added_by: str | None = None,
) -> IngestReport:
    """Add files and folders to a collection; never stops at a bad file.

    Args:
        store: The collection to write (created if needed).
        paths: Files and folders.
        on_progress: Called after each file and after each batch of chunks written.
        prune: Also remove the stored files under ``paths`` that no longer exist (see
            :func:`prune_missing`); a given path that is gone is then no failure if
            files were stored under it.
        added_by: Who adds them, kept in every chunk's metadata (``added_by``): in a
            collection several users share, only they may remove the file. None = no one
            named (the store's :attr:`SourceInfo.added_by` is then None).

    Returns:
        What was added, replaced, unchanged, skipped, failed and pruned, and how long it
        took.

    Raises:
        DocumentStoreError: The store cannot be opened at all (nothing was written).
    """
    paths = list(paths)
    started = time.perf_counter()
    store.open(create=True)
    settings = store.settings.retrieval
    chunking = chunking_key(settings.chunk_tokens, settings.chunk_overlap_tokens)
    plan = collect_files(paths)
    report = IngestReport(collection=store.name, skipped=plan.skipped, failed=plan.failed)
    total = len(plan.files)
    done, chunks_done, current = 0, 0, None

    def progress() -> None:
        if on_progress:
            on_progress(IngestProgress(done, total, chunks_done, current))

    def wrote(count: int) -> None:
        nonlocal chunks_done
        chunks_done += count
        progress()

    for path, kind in plan.files:
        current = str(path)
        progress()
        try:
            _ingest_file(store, path, kind, chunking, report, wrote, added_by)
        except SkippedFile as exc:
            report.skipped.append(FileProblem(current, exc.reason))
        except (BadFile, DocumentStoreError) as exc:
            report.failed.append(FileProblem(current, str(exc)))
        except Exception as exc:  # a loader's bug must not cost the rest of the batch
            logger.debug("ingesting %s failed", path, exc_info=True)
            report.failed.append(FileProblem(current, f"unexpected error: {exc!r}"))
        done += 1
    current = None
    if prune:
        report.pruned = prune_missing(store, paths)
        pruned = [Path(f.path) for f in report.pruned]
        report.failed = [
            problem
            for problem in report.failed
            if not (
                problem.reason == "no such file or folder"
                and any(_under(source, _absolute(problem.path)) for source in pruned)
            )
        ]
    progress()
    report.seconds = time.perf_counter() - started
    return report


def _absolute(given: str | Path) -> Path:
    """A path as sources are stored: absolute, symlinks of its existing part resolved."""
    return Path(given).expanduser().resolve()


def _under(source: Path, root: Path) -> bool:
    return source == root or root in source.parents


def _gone(path: Path) -> bool:
    """Whether a stored file is no longer on disk (one that cannot be checked is kept)."""
    try:
        return not path.is_file()
    except OSError:  # no permission to look: it may well be there
        return False


def prune_missing(
    store: DocumentStore, paths: Iterable[str | Path], *, dry_run: bool = False
) -> list[FileResult]:
    """Remove the stored files under ``paths`` that are no longer on disk.

    A stored file counts as under a path when it is that path or inside that folder (the
    path need not exist any more: a deleted folder prunes everything stored from it).
    Files that still exist are left alone, whatever their type.

    Args:
        store: The collection.
        paths: Files and folders, as given to :func:`ingest`.
        dry_run: Only say what would be removed.

    Returns:
        One entry per stored file gone from disk, with the chunks removed (or that would
        be), sorted by path.

    Raises:
        DocumentStoreError: The store cannot be read or written.
    """
    roots = [_absolute(given) for given in paths]
    gone: list[FileResult] = []
    for info in store.sources():
        source = Path(info.source)
        if not any(_under(source, root) for root in roots) or not _gone(source):
            continue
        removed = info.chunks if dry_run else store.remove(info.source)
        gone.append(FileResult(info.source, chunks=0, removed=removed))
    return sorted(gone, key=lambda f: f.path)


def _ingest_file(
    store: DocumentStore,
    path: Path,
    kind: str | None,
    chunking: str,
    report: IngestReport,
    wrote: Callable[[int], None],
    added_by: str | None = None,
) -> None:
    data = read_bytes(path)
    source = str(path.resolve())
    digest = file_sha256(data)
    stored = store.source_info(source)
    if (
        stored
        and stored.complete
        and (stored.file_hash, stored.chunking) == (digest, chunking)
        # Someone else adding the same file makes it theirs: its chunks are written again.
        and (added_by is None or stored.added_by == added_by)
    ):
        report.unchanged.append(source)
        return
    if kind is None:
        kind = "text"  # named explicitly with another extension: text, unless binary
    try:
        documents = load_bytes(data, kind)
    except SkippedFile as exc:
        if stored is None:
            raise
        # It was indexed and now holds nothing to index (emptied, say): its old text
        # must not keep answering questions. A file that fails to load keeps its chunks.
        removed = store.remove(source)
        raise SkippedFile(f"{exc.reason}; its {removed} stored chunks were removed") from None
    settings = store.settings.retrieval
    chunks = chunk_documents(
        documents,
        source,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        metadata={
            "name": path.name,
            "file_hash": digest,
            "chunking": chunking,
            "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **({"added_by": added_by} if added_by is not None else {}),
        },
    )
    if not chunks:
        raise SkippedFile("no text")
    # Documents are data: passages that talk to the assistant are reported to the user.
    checks = [(chunk, inspect_passage(chunk.text)) for chunk in chunks]
    flagged = [(chunk, check) for chunk, check in checks if check.flagged]
    if flagged:
        chunk, check = flagged[0]
        report.flagged.append(FlaggedFile(source, len(flagged), check.excerpt(chunk.text)))
    result = store.replace_source(source, chunks, on_progress=wrote)
    entry = FileResult(source, result.written, result.removed)
    (report.replaced if stored else report.added).append(entry)
