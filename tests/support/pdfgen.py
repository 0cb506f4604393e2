"""Real PDF files for tests, written by hand: no PDF writer package needed.

``make_pdf(["page one text", "page two text"])`` gives a valid PDF 1.4 with one page per
string, each drawn in the standard Helvetica font (WinAnsi encoding), which any PDF
reader, pypdf included, extracts again. Long text is wrapped into lines; blank lines in
the text are kept. ``encrypt_pdf`` adds a password with pypdf.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

_LINE_CHARS = 90
_LINES_PER_PAGE = 56  # 11 pt leading from y=760 down to the bottom margin


def _escape(line: str) -> bytes:
    raw = line.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _content(text: str) -> bytes:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, _LINE_CHARS) or [""])
    if len(lines) > _LINES_PER_PAGE:
        raise ValueError(f"too much text for one page ({len(lines)} lines > {_LINES_PER_PAGE})")
    ops = [b"BT", b"/F1 10 Tf", b"11 TL", b"56 760 Td"]
    for i, line in enumerate(lines):
        ops.append((b"T* " if i else b"") + b"(" + _escape(line) + b") Tj")
    ops.append(b"ET")
    return b"\n".join(ops)


def make_pdf(pages: Sequence[str], path: Path | None = None) -> bytes:
    """A PDF with one page per string (US Letter, Helvetica 10 pt).

    Args:
        pages: The text of each page (at most ~56 wrapped lines of 90 characters each).
        path: Also write the PDF there.

    Returns:
        The PDF's bytes.
    """
    if not pages:
        raise ValueError("a PDF needs at least one page")
    count = len(pages)
    # Objects: 1 catalog, 2 page tree, 3 font, then a page and its content per page.
    page_ids = [4 + 2 * i for i in range(count)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % n for n in page_ids)
        + b"] /Count %d >>" % count,
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for page_id, text in zip(page_ids, pages, strict=True):
        stream = _content(text)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n")
    xref = out.tell()
    size = max(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for number in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[number])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    data = out.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def encrypt_pdf(data: bytes, user_password: str, owner_password: str = "owner") -> bytes:
    """The PDF encrypted with pypdf (AES-128); an empty user password opens it for reading."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
