"""Loaders: a file's bytes as LangChain ``Document`` s with ``page`` or ``section`` metadata.

One document per page for PDFs (``page``, 1-based), one per heading section for Markdown
and HTML (``section``, the heading path such as ``"Install > Linux"``), one for plain
text. A file that cannot be used raises :class:`SkippedFile` (nothing wrong with it, but
nothing to index: empty, binary, no text layer) or :class:`BadFile` (broken or
unreadable: a corrupt or encrypted PDF, no permission).

Libraries measured for the generic parts (tests in ``tests/unit/test_sections.py``):

- Text in legacy encodings is decoded by charset-normalizer (:func:`decode_text`).
- Markdown is split here, not by langchain-text-splitters' ``MarkdownHeaderTextSplitter``
  (1.1.3), which fails 12 of our 15 Markdown cases: it has no setext headings, keeps
  closing hashes and emphasis in the path (``"Guide ##"``), takes indented code for a
  heading, glues a heading without text onto the next section, and re-joins lines with
  two trailing spaces, losing the blank lines between paragraphs the chunker splits at.
- HTML is split here, not by ``HTMLHeaderTextSplitter``, which fails all 14 of our HTML
  cases: it keeps the text of ``script``, ``style``, ``noscript``, ``template``,
  ``svg``, ``iframe``, ``object`` and ``canvas`` in the body and of comments, drops the
  ``title``, emits mixed inline text out of order (``"| |"`` before ``"Home"``), and
  returns each heading as a document apart from its text. ``HTMLSectionSplitter`` needs
  lxml, which is not installed.
- No langchain-community (0.4.2) loader is used. ``PyPDFLoader`` runs pypdf page by page
  as we do, at the same speed, but raises pypdf's errors (``FileNotDecryptedError``,
  ``PdfStreamError``, ``EmptyFileError``), returns blank pages with 0-based numbers and
  PDF metadata (producer, creator, ...), and loses the whole file to one unreadable page.
  ``TextLoader`` keeps the BOM, loads empty and NUL-filled files, fails on cp1252 and
  UTF-16, and needs chardet (not installed) to detect encodings. ``BSHTMLLoader`` gives
  one document without sections, keeps ``noscript``, glues words (``"CleaningUse
  vinegar."``) and needs lxml unless told otherwise. ``PyPDFium2Loader`` and
  ``UnstructuredMarkdownLoader`` need pypdfium2 and unstructured (not installed).
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

MAX_FILE_BYTES = 200 * 1024 * 1024
"""Files bigger than this (200 MB) are skipped, never read into memory.

The web page's upload limit (``max_file_size`` in apps/ui/page.py) is the same, so what
can be uploaded can be ingested. A file this size is read whole, decoded and chunked in
memory (a few times its size at the peak); a 200 MB text file is some 50 million words,
far more than anyone asks a local assistant to search.
"""

SECTION_SEPARATOR = " > "
_SNIFF = 8192  # bytes (or characters) looked at for NUL and control characters


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


def _megabytes(size: int) -> str:
    megabytes = size / (1024 * 1024)
    return f"{megabytes:,.0f} MB" if megabytes == round(megabytes) else f"{megabytes:,.1f} MB"


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes, if it is not bigger than ``limit`` bytes (:data:`MAX_FILE_BYTES`).

    The size is checked before reading, and no more than ``limit`` + 1 bytes are ever
    read (a file that grows while it is read is caught too).

    Raises:
        SkippedFile: The file is over the limit ("over 200 MB"): nothing wrong with it,
            but it is not read.
        BadFile: It cannot be read; the reason says why (no permission, a folder, ...).
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    too_big = f"over {_megabytes(limit)} (the ingest limit)"
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limit:
                raise SkippedFile(f"{too_big}: {_megabytes(size)}")
            data = file.read(limit + 1)
    except OSError as exc:
        raise BadFile(f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise SkippedFile(too_big)
    return data


# A BOM is certain; charset-normalizer's mess detector rejects some BOM-marked UTF-16/32
# text (tree drawings, formulas) as binary.
_UTF_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters other than whitespace: common in binary, rare in text.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
# Below this many bytes charset-normalizer takes random bytes for text in some code page
# (measured: 51 of 200 random 24-byte strings, 3 of 200 at 32 bytes, none at 48).
_MIN_GUESS = 48
_WESTERN = ["cp1252", "latin_1"]


def decode_text(data: bytes) -> str:
    """Bytes of a text file as a string.

    Valid UTF-8 (with or without a BOM) is UTF-8, and a UTF-16 or UTF-32 BOM says which.
    Other files are left to charset-normalizer: Windows-1252 if it reads as text, else
    the encoding it finds plausible (GB18030, Shift-JIS, Windows-1251, ...) for files of
    at least 48 bytes.

    Raises:
        SkippedFile: The file is empty (or only whitespace), or binary: NUL bytes (not
            UTF-16/32 with a BOM), too many control characters, or no encoding gives
            plausible text.
    """
    if not data.strip():
        raise SkippedFile("empty file")
    try:
        # Asked about valid UTF-8, charset-normalizer's mess detector calls some plain
        # ASCII files binary (12 of 2,921 text files of the venv: Python code, METADATA).
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _decode_other(data)
    return _checked_text(text)


def _decode_other(data: bytes) -> str:
    from charset_normalizer import from_bytes

    encoding = next((name for bom, name in _UTF_BOMS if data.startswith(bom)), None)
    if encoding:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            raise SkippedFile("binary file (not valid text)") from None
    if b"\x00" in data[:_SNIFF]:  # binary, as git decides (no guessing UTF-16 without a BOM)
        raise SkippedFile("binary file (NUL bytes)")
    # Without the fallback, "nothing fits" comes back as None rather than a weak guess.
    # Windows-1252 is asked first (Latin-1 where it has holes, such as 0x81): alone,
    # charset-normalizer reads Western text as cp1250 or cp1258 ("crème" -> "crčme").
    western = from_bytes(data, cp_isolation=_WESTERN, enable_fallback=False).best()
    if western is not None:
        return str(western)
    best = from_bytes(data, enable_fallback=False).best()
    if best is None or len(data) < _MIN_GUESS:
        raise SkippedFile("binary file (no text encoding fits)")
    return str(best)


def _checked_text(text: str) -> str:
    sample = text[:_SNIFF]
    if "\x00" in sample:
        raise SkippedFile("binary file (NUL bytes)")
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
        SkippedFile: Empty, binary, without extractable text, or over
            :data:`MAX_FILE_BYTES`.
        BadFile: Unreadable, or a corrupt or encrypted PDF.
    """
    file = Path(path)
    return load_bytes(read_bytes(file), kind or kind_of(file) or "text")


# A PDF starts with this header (after nothing but whitespace, when it is not named .pdf:
# a looser test would take a text file that mentions "%PDF-" near its top for a PDF).
_PDF_MAGIC = re.compile(rb"\s*%PDF-\d")


def sniff_kind(data: bytes, kind: str) -> str:
    """The loader the content asks for, whatever the name said: ``pdf`` for a PDF.

    An uncompressed PDF renamed ``.txt`` (or given without an extension) decodes as text
    and would be stored as raw PDF syntax; its ``%PDF-`` header says what it is.
    """
    return "pdf" if kind != "pdf" and _PDF_MAGIC.match(data[:64]) else kind


def load_bytes(data: bytes, kind: str) -> list[Document]:
    """Like :func:`load_file` on bytes already read.

    A file whose bytes start with the PDF header is loaded as a PDF whatever ``kind``
    says (see :func:`sniff_kind`); its documents then have ``kind`` ``pdf``.
    """
    kind = sniff_kind(data, kind)
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


def _closes(fence: str, line: str) -> bool:
    """Whether ``line`` closes a code block opened by ``fence`` (CommonMark).

    A closing fence uses the same character, is at least as long as the opening one, is
    indented by at most three spaces and has nothing after it but spaces, so a shorter
    fence inside a longer one is code, not the end of the block.
    """
    found = _FENCE.match(line)
    return (
        found is not None
        and found.group(1)[0] == fence[0]
        and len(found.group(1)) >= len(fence)
        and not line[found.end() :].strip()
    )


def _heading_text(raw: str) -> str:
    return re.sub(r"\s+", " ", raw.strip().strip("*_`").strip())


def markdown_sections(text: str) -> list[tuple[str | None, str]]:
    """Markdown split at its headings: (heading path or None, text) in file order.

    The heading line stays at the top of its section's text. Headings inside fenced
    code blocks and YAML front matter are not headings. Sections holding only a heading
    are dropped (a chunk of a heading alone would crowd real passages out of retrieval),
    unless no heading has text under it: then the headings are the text (an outline, a
    title page), kept as one section without a path.
    """
    lines = text.splitlines()
    sections: list[tuple[str | None, str]] = []
    trail: list[tuple[int, str]] = []
    current: list[str] = []
    has_body = False

    bare: list[str] = []  # headings without text, in file order

    def flush() -> None:
        if has_body:
            path = SECTION_SEPARATOR.join(title for _, title in trail) or None
            sections.append((path, _clean("\n".join(current))))
        elif trail:
            bare.append(_clean("\n".join(current)))

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
            if _closes(fence, line):
                fence = None
            current.append(line)
            has_body = True
            i += 1
            continue
        opening = _FENCE.match(line)
        atx = _ATX.match(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if opening:
            fence = opening.group(1)
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
    return _headings_as_text(sections, bare)


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


_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _declarations(style: str) -> dict[str, str]:
    """An inline ``style`` attribute as {property: value}, lower-cased, ``!important`` off."""
    found: dict[str, str] = {}
    for declaration in _CSS_COMMENT.sub("", style).split(";"):
        name, colon, value = declaration.partition(":")
        if colon:
            value = re.sub(r"!\s*important\s*$", "", value.strip().lower()).strip()
            found[name.strip().lower()] = value
    return found


def _attribute(tag: Any, name: str) -> str:
    value = tag.get(name)
    if isinstance(value, list):  # bs4 splits multi-valued attributes such as class
        value = " ".join(value)
    return str(value).strip().lower() if value is not None else ""


def _removed_by_markup(tag: Any) -> bool:
    """Whether the element and everything in it is never shown (or is meant to be unseen)."""
    if tag.has_attr("hidden") and _attribute(tag, "hidden") != "until-found":
        return True  # "until-found" text is shown when the page is searched: it is content
    if _attribute(tag, "aria-hidden") == "true":
        return True
    if tag.name == "input" and _attribute(tag, "type") == "hidden":
        return True
    return _declarations(_attribute(tag, "style")).get("display") == "none"


def _visibility(tag: Any) -> str | None:
    return _declarations(_attribute(tag, "style")).get("visibility")


def _inherits(tag: Any) -> bool:
    return _visibility(tag) in (None, "inherit", "unset")


def _drop_hidden(soup: Any) -> None:
    """Remove what the page's own markup hides, so it can never reach the store.

    Hidden are: the ``hidden`` attribute (any spelling of it but ``until-found``),
    ``aria-hidden="true"``, ``<input type="hidden">`` and inline ``display: none``, each
    with everything inside; and text under inline ``visibility: hidden`` (or
    ``collapse``) unless a nearer element makes it ``visible`` again, as CSS does.
    Stylesheets are not evaluated: text hidden by a class rule stays.
    """
    from bs4.element import NavigableString, Tag

    for tag in soup.find_all(_removed_by_markup):
        if not tag.decomposed:  # already gone with a hidden ancestor
            tag.decompose()
    for tag in soup.find_all(lambda t: _visibility(t) in ("hidden", "collapse")):
        if tag.decomposed:
            continue
        for string in list(tag.find_all(string=True)):
            if not isinstance(string, NavigableString):
                continue
            owner = string.parent
            # The nearest element that sets its own visibility decides ("inherit" does not).
            while isinstance(owner, Tag) and owner is not tag and _inherits(owner):
                owner = owner.parent
            if owner is tag or _visibility(owner) in ("hidden", "collapse"):
                string.extract()


def _headings_as_text(
    sections: list[tuple[str | None, str]], bare: list[str]
) -> list[tuple[str | None, str]]:
    """The sections, plus the bare headings as one section when no heading had text."""
    if bare and not any(path for path, _ in sections):
        return [*sections, (None, "\n\n".join(bare))]
    return sections


def html_sections(text: str) -> list[tuple[str | None, str]]:
    """Visible HTML text split at ``h1``-``h6``: (heading path or None, text) in order.

    Scripts, styles and other invisible elements are dropped, and so is text hidden by
    its markup (see :func:`_drop_hidden`); the page title, if any, opens the text before
    the first heading. Headings without text are dropped unless no heading has text, as
    in :func:`markdown_sections`.
    """
    from bs4 import BeautifulSoup, Comment, Declaration, Doctype, ProcessingInstruction, Tag

    soup = BeautifulSoup(text, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup(list(_DROP_TAGS)):
        element.decompose()
    _drop_hidden(soup)
    sections: list[tuple[str | None, str]] = []
    trail: list[tuple[int, str]] = []
    buffer: list[str] = [title, "\n"] if title else []
    has_body = bool(title)

    bare: list[str] = []

    def flush() -> None:
        if has_body:
            path = SECTION_SEPARATOR.join(name for _, name in trail) or None
            sections.append((path, _clean("".join(buffer))))
        elif trail:
            bare.append(_clean("".join(buffer)))

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
    return _headings_as_text(sections, bare)
