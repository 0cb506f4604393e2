"""Ingestion: the user's files, loaded, split into chunks and written to the document store.

Loaders turn a file into LangChain ``Document`` s: one per page for PDFs (``page``,
1-based), one per heading section for Markdown and HTML (``section``, the heading path
such as ``"Install > Linux"``), one for plain text. Chunks are cut with
``RecursiveCharacterTextSplitter`` (``retrieval.chunk_size``/``chunk_overlap``) within
each of those, so every chunk keeps its page or section.

Chunk ids are a hash of the source, the chunk's index in the file and its text, so the
same file always gives the same ids. A file whose bytes (SHA-256) and chunking settings
are what the store already holds is not loaded or embedded again; a changed one
replaces its chunks (an interrupted write counts as changed).

A file that cannot be used never stops a batch: it is *skipped* when there is nothing
wrong with it but nothing to index (empty, binary, an unsupported type in a folder, a
PDF without a text layer) and *failed* when it is broken or cannot be read (a corrupt or
encrypted PDF, no such path, no permission). A stored file that now has nothing to index
loses its chunks; one that now fails to load keeps them.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.vectorstore import Chunk, DocumentStore, DocumentStoreError, MetadataValue

if TYPE_CHECKING:
    from langchain_core.documents import Document

logger = logging.getLogger(__name__)

SUPPORTED: dict[str, str] = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
}
"""File extensions ingested from folders, and the loader each one gets."""

SECTION_SEPARATOR = " > "
_SNIFF = 8192  # bytes looked at to tell text from binary


class SkippedFile(Exception):
    """Nothing is wrong with the file, but there is nothing in it to index."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadFile(Exception):
    """The file is broken or cannot be read (corrupt, encrypted, no permission)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- reading and decoding ------------------------------------------------------------


def file_sha256(data: bytes) -> str:
    """The SHA-256 of a file's bytes (hex), what re-ingestion compares."""
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: Path) -> bytes:
    """The file's bytes.

    Raises:
        BadFile: It cannot be read; the reason says why (no permission, a folder, ...).
    """
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadFile(f"cannot read: {exc.strerror or exc}") from exc


_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# C0/C1 control characters other than whitespace: common in binary, rare in text.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def decode_text(data: bytes) -> str:
    """Bytes of a text file as a string: UTF-8 (or a BOM's encoding), else Windows-1252.

    Raises:
        SkippedFile: The file is empty (or only whitespace), or binary: NUL bytes, too
            many control characters, or not UTF-8 and mostly non-ASCII bytes.
    """
    if not data.strip():
        raise SkippedFile("empty file")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                raise SkippedFile("binary file (not valid text)") from None
            return _checked_text(text)
    if b"\x00" in data[:_SNIFF]:
        raise SkippedFile("binary file (NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8: an older 8-bit text encoding (mostly ASCII still), or binary.
        sample = data[:_SNIFF]
        if sum(byte >= 0x80 for byte in sample) > len(sample) * 0.3:
            raise SkippedFile("binary file (not UTF-8 text)") from None
        text = data.decode("cp1252", errors="replace")
    return _checked_text(text)


def _checked_text(text: str) -> str:
    sample = text[:_SNIFF]
    if len(_CONTROL.findall(sample)) > max(2, len(sample) // 50):
        raise SkippedFile("binary file (control characters)")
    if not text.strip():
        raise SkippedFile("empty file")
    return text


def _clean(text: str) -> str:
    """Spaces collapsed within lines, runs of blank lines collapsed to one."""
    lines = [re.sub(r"[ \t\f\v\xa0\u200b]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- loaders -------------------------------------------------------------------------


def _document(text: str, **metadata: Any) -> Document:
    from langchain_core.documents import Document

    return Document(
        page_content=text, metadata={k: v for k, v in metadata.items() if v is not None}
    )


def kind_of(path: Path) -> str | None:
    """The loader for a file name (``pdf``, ``markdown``, ``html``, ``text``), or None."""
    return SUPPORTED.get(path.suffix.lower())


def load_file(path: str | Path, kind: str | None = None) -> list[Document]:
    """Load one file as documents with ``page`` or ``section`` metadata.

    Args:
        path: The file.
        kind: ``pdf``, ``markdown``, ``html`` or ``text``; None = from the extension,
            plain text for an unknown one.

    Returns:
        At least one non-empty document; each has ``kind`` in its metadata.

    Raises:
        SkippedFile: Empty, binary, or without extractable text.
        BadFile: Unreadable, or a corrupt or encrypted PDF.
    """
    file = Path(path)
    return load_bytes(read_bytes(file), kind or kind_of(file) or "text")


def load_bytes(data: bytes, kind: str) -> list[Document]:
    """Like :func:`load_file` on bytes already read."""
    if kind == "pdf":
        documents = load_pdf(data)
    else:
        text = decode_text(data)
        if kind == "markdown":
            sections = markdown_sections(text)
        elif kind == "html":
            sections = html_sections(text)
        else:
            sections = [(None, _clean(text))]
        documents = [_document(body, section=title) for title, body in sections if body.strip()]
    if not documents:
        raise SkippedFile("no text")
    for document in documents:
        document.metadata["kind"] = kind
    return documents


def load_pdf(data: bytes) -> list[Document]:
    """One document per PDF page that has text, with its 1-based ``page``.

    Raises:
        BadFile: Corrupt, not a PDF, or encrypted with a password.
        SkippedFile: Empty, or no page has a text layer (a scanned PDF).
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    if not data.strip():
        raise SkippedFile("empty file")
    if b"%PDF-" not in data[:1024]:
        raise BadFile("corrupt PDF: no PDF header (is it really a PDF?)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only to restrict printing: the empty password opens them.
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise BadFile(f"encrypted PDF that pypdf cannot decrypt here: {exc}") from exc
            if not opened:
                raise BadFile("encrypted PDF (needs a password): decrypt it first, then ingest")
        pages = list(reader.pages)
    except BadFile:
        raise
    except PyPdfError as exc:
        raise BadFile(f"corrupt PDF: {exc or type(exc).__name__}") from exc
    except Exception as exc:  # pypdf also fails on broken files with KeyError, zlib.error...
        raise BadFile(f"corrupt PDF: {type(exc).__name__}: {exc}") from exc
    documents: list[Document] = []
    broken = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = _clean(page.extract_text() or "")
        except Exception as exc:  # one bad page must not lose the others
            logger.warning("page %d cannot be read: %s", number, exc)
            broken += 1
            continue
        if text:
            documents.append(_document(text, page=number))
    if not documents:
        if broken:
            raise BadFile(f"corrupt PDF: none of its {len(pages)} pages can be read")
        raise SkippedFile("no text in the PDF (scanned pages without a text layer?)")
    return documents


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>|]|\d+[.)]|#|`{3,}|~{3,})")


def _heading_text(raw: str) -> str:
    return re.sub(r"\s+", " ", raw.strip().strip("*_`").strip())


def markdown_sections(text: str) -> list[tuple[str | None, str]]:
    """Markdown split at its headings: (heading path or None, text) in file order.

    The heading line stays at the top of its section's text. Headings inside fenced
    code blocks and YAML front matter are not headings. Sections holding only a heading
    are dropped.
    """
    lines = text.splitlines()
    sections: list[tuple[str | None, str]] = []
    trail: list[tuple[int, str]] = []
    current: list[str] = []
    has_body = False

    def flush() -> None:
        if has_body:
            path = SECTION_SEPARATOR.join(title for _, title in trail) or None
            sections.append((path, _clean("\n".join(current))))

    def open_section(level: int, title: str, raw: list[str]) -> None:
        nonlocal current, has_body
        flush()
        while trail and trail[-1][0] >= level:
            trail.pop()
        trail.append((level, title))
        current, has_body = list(raw), False

    start = 0
    if lines and lines[0].strip() == "---":  # front matter: kept as text
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
        current, has_body, start = lines[: end + 1], end > 0, end + 1
    fence: str | None = None
    i = start
    while i < len(lines):
        line = lines[i]
        if fence is not None:
            if line.lstrip().startswith(fence):
                fence = None
            current.append(line)
            has_body = True
            i += 1
            continue
        opening = _FENCE.match(line)
        atx = _ATX.match(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if opening:
            fence = opening.group(1)[0] * 3
        elif atx and _heading_text(atx.group(2) or ""):
            open_section(len(atx.group(1)), _heading_text(atx.group(2) or ""), [line])
            i += 1
            continue
        elif (
            line.strip()
            and _SETEXT.match(following)
            and not _NOT_PARAGRAPH.match(line)
            and (i == start or not lines[i - 1].strip())
        ):
            level = 1 if following.strip().startswith("=") else 2
            open_section(level, _heading_text(line), [line, following])
            i += 2
            continue
        current.append(line)
        has_body = has_body or bool(line.strip())
        i += 1
    flush()
    return sections


_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "object",
    "head",
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset(
    (
        *("address", "article", "aside", "blockquote", "caption", "dd", "details", "div"),
        *("dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr"),
        *("li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody"),
        *("tfoot", "thead", "title", "tr", "ul"),
    )
)


def html_sections(text: str) -> list[tuple[str | None, str]]:
    """Visible HTML text split at ``h1``-``h6``: (heading path or None, text) in order.

    Scripts, styles and other invisible elements are dropped; the page title, if any,
    opens the text before the first heading.
    """
    from bs4 import BeautifulSoup, Comment, Declaration, Doctype, ProcessingInstruction, Tag

    soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup(list(_DROP_TAGS)):
        element.decompose()
    sections: list[tuple[str | None, str]] = []
    trail: list[tuple[int, str]] = []
    buffer: list[str] = [title, "\n"] if title else []
    has_body = bool(title)

    def flush() -> None:
        if has_body:
            path = SECTION_SEPARATOR.join(name for _, name in trail) or None
            sections.append((path, _clean("".join(buffer))))

    # Iterative walk (deeply nested pages would overflow recursion): (node, closing).
    stack: list[tuple[Any, bool]] = [(soup, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            buffer.append("\n")
            continue
        if not isinstance(node, Tag):
            if not isinstance(node, Comment | Declaration | Doctype | ProcessingInstruction):
                buffer.append(str(node))
                has_body = has_body or bool(str(node).strip())
            continue
        heading = node.get_text(" ", strip=True) if node.name in _HEADINGS else ""
        if heading:
            flush()
            level = _HEADINGS[node.name]
            while trail and trail[-1][0] >= level:
                trail.pop()
            trail.append((level, heading))
            buffer, has_body = [heading, "\n"], False
            continue
        if node.name == "br":
            buffer.append("\n")
        elif node.name in ("td", "th"):
            buffer.append(" ")
        elif node.name in _BLOCKS or node.name in _HEADINGS:
            buffer.append("\n")
            stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    flush()
    return sections


# --- chunking ------------------------------------------------------------------------


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


@dataclass
class IngestReport:
    """What one :func:`ingest` call did."""

    collection: str
    added: list[FileResult] = field(default_factory=list)
    replaced: list[FileResult] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)
    failed: list[FileProblem] = field(default_factory=list)
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
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            plan.files.append((path, kind))

    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            reason = "broken symbolic link" if path.is_symlink() else "no such file or folder"
            plan.failed.append(FileProblem(str(given), reason))
        elif path.is_dir():
            _walk(path, plan, add)
        elif not path.is_file():
            plan.skipped.append(FileProblem(str(path), "not a regular file"))
        else:
            add(path, kind_of(path))
    return plan


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
            if kind is None:
                plan.skipped.append(FileProblem(str(path), f"unsupported type ({path.suffix})"))
            elif not path.is_file():
                plan.skipped.append(FileProblem(str(path), "not a regular file"))
            else:
                add(path, kind)


def ingest(
    store: DocumentStore,
    paths: Iterable[str | Path],
    *,
    on_progress: Callable[[IngestProgress], None] | None = None,
) -> IngestReport:
    """Add files and folders to a collection; never stops at a bad file.

    Args:
        store: The collection to write (created if needed).
        paths: Files and folders.
        on_progress: Called after each file and after each batch of chunks written.

    Returns:
        What was added, replaced, unchanged, skipped and failed, and how long it took.

    Raises:
        DocumentStoreError: The store cannot be opened at all (nothing was written).
    """
    started = time.perf_counter()
    store.open(create=True)
    settings = store.settings.retrieval
    chunking = chunking_key(settings.chunk_size, settings.chunk_overlap)
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
            _ingest_file(store, path, kind, chunking, report, wrote)
        except SkippedFile as exc:
            report.skipped.append(FileProblem(current, exc.reason))
        except (BadFile, DocumentStoreError) as exc:
            report.failed.append(FileProblem(current, str(exc)))
        except Exception as exc:  # a loader's bug must not cost the rest of the batch
            logger.debug("ingesting %s failed", path, exc_info=True)
            report.failed.append(FileProblem(current, f"unexpected error: {exc!r}"))
        done += 1
    current = None
    progress()
    report.seconds = time.perf_counter() - started
    return report


def _ingest_file(
    store: DocumentStore,
    path: Path,
    kind: str | None,
    chunking: str,
    report: IngestReport,
    wrote: Callable[[int], None],
) -> None:
    data = read_bytes(path)
    source = str(path.resolve())
    digest = file_sha256(data)
    stored = store.source_info(source)
    if stored and stored.complete and (stored.file_hash, stored.chunking) == (digest, chunking):
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
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        metadata={
            "name": path.name,
            "file_hash": digest,
            "chunking": chunking,
            "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    if not chunks:
        raise SkippedFile("no text")
    result = store.replace_source(source, chunks, on_progress=wrote)
    entry = FileResult(source, result.written, result.removed)
    (report.replaced if stored else report.added).append(entry)
