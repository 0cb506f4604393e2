"""Ingest when a file is not what its name says, is only headings, or is too big."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graph.settings import Settings
from tests.support.pdfgen import make_pdf
from tests.support.stores import DictStore
from tools.documents.ingest import ingest
from tools.documents.loaders import (
    MAX_FILE_BYTES,
    BadFile,
    SkippedFile,
    html_sections,
    load_bytes,
    load_file,
    markdown_sections,
    read_bytes,
    sniff_kind,
)

# --- 6. a PDF is a PDF whatever its name ------------------------------------------------


def ascii_pdf(pages: list[str]) -> bytes:
    """An uncompressed PDF of ASCII only (no binary comment line): valid UTF-8 text."""
    data = make_pdf(pages)
    header, binary_comment, rest = data.split(b"\n", 2)
    assert binary_comment.startswith(b"%\xe2")
    # The xref offsets count bytes: pad the comment to the same length in ASCII.
    return header + b"\n" + b"%" + b"a" * (len(binary_comment) - 1) + b"\n" + rest


@pytest.mark.parametrize("name", ["report.txt", "report.md", "report.html", "report.dat"])
@pytest.mark.parametrize("make", [make_pdf, ascii_pdf])
def test_a_renamed_pdf_is_loaded_as_a_pdf(
    tmp_path: Path, name: str, make: Callable[[list[str]], bytes]
) -> None:
    path = tmp_path / name
    path.write_bytes(make(["Quarterly revenue rose.", "Costs fell."]))
    documents = load_file(path)
    assert [d.page_content for d in documents] == ["Quarterly revenue rose.", "Costs fell."]
    assert [d.metadata for d in documents] == [
        {"page": 1, "kind": "pdf"},
        {"page": 2, "kind": "pdf"},
    ]
    assert not any("obj" in d.page_content or "endstream" in d.page_content for d in documents)


@pytest.mark.parametrize(
    ("data", "kind", "expected"),
    [
        (b"%PDF-1.7\n...", "text", "pdf"),
        (b"\n  \r\n%PDF-1.4\n...", "markdown", "pdf"),  # whitespace before the header
        (b"%PDF-2.0", "html", "pdf"),
        (b"%PDF-1.4", "pdf", "pdf"),
        (b"Notes on the format.\n%PDF-1.4 is the header of a PDF file.\n", "text", "text"),
        (b"# The %PDF- header\n", "markdown", "markdown"),
        (b"%PDF-", "text", "text"),  # no version: not the header
        (b"<p>%PDF-1.4</p>", "html", "html"),
    ],
)
def test_sniff_kind(data: bytes, kind: str, expected: str) -> None:
    assert sniff_kind(data, kind) == expected


def test_a_text_file_that_mentions_the_header_stays_text() -> None:
    (document,) = load_bytes(b"About PDFs: every file starts with %PDF-1.4 or so.", "text")
    assert document.metadata == {"kind": "text"}


def test_a_broken_pdf_named_txt_fails_as_a_pdf_not_stored_as_syntax() -> None:
    with pytest.raises(BadFile, match="corrupt PDF"):
        load_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "text")


def test_ingest_stores_a_renamed_pdf_as_pages(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "scan.txt").write_bytes(ascii_pdf(["The kettle holds 1.7 litres."]))
    (folder / "notes.txt").write_text("Plain notes.")
    store = DictStore(make_settings())
    report = ingest(store, [folder])  # type: ignore[arg-type]
    assert sorted(Path(f.path).name for f in report.added) == ["notes.txt", "scan.txt"]
    texts = {m["name"]: (text, m.get("page")) for text, m in store.chunks.values()}
    text, page = texts["scan.txt"]
    assert "The kettle holds 1.7 litres." in text and page == 1
    assert "%PDF" not in text and "endobj" not in text


# --- 7. headings are text -------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("# Release checklist\n", "# Release checklist"),
        ("# Plan\n## Phase one\n### Week 1\n", "# Plan\n\n## Phase one\n\n### Week 1"),
        ("Title\n=====\n\nSubtitle\n--------\n", "Title\n=====\n\nSubtitle\n--------"),
        ("# Guide ##\n\n\n## Appendix #\n", "# Guide ##\n\n## Appendix #"),
        ("## Only\n# Out of order\n", "## Only\n\n# Out of order"),
    ],
)
def test_a_markdown_file_of_headings_alone_is_kept(
    tmp_path: Path, markdown: str, expected: str
) -> None:
    path = tmp_path / "outline.md"
    path.write_text(markdown)
    (document,) = load_file(path)
    assert document.page_content == expected
    assert document.metadata == {"kind": "markdown"}


def test_headings_alone_after_front_matter_are_kept() -> None:
    sections = markdown_sections("---\ntitle: x\n---\n# A\n## B\n")
    assert sections == [(None, "---\ntitle: x\n---"), (None, "# A\n\n## B")]


def test_a_bare_heading_next_to_sections_with_text_is_still_dropped() -> None:
    # Unchanged: a chunk of one heading would crowd real passages out of retrieval.
    sections = markdown_sections("# A\n\nText.\n\n# Empty\n\n# C\n\nMore.\n")
    assert sections == [("A", "# A\n\nText."), ("C", "# C\n\nMore.")]


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<h1>Contents</h1><h2>Part one</h2><h2>Part two</h2>", "Contents\n\nPart one\n\nPart two"),
        ("<html><body><h3>Closed today</h3><script>x()</script></body></html>", "Closed today"),
    ],
)
def test_an_html_page_of_headings_alone_is_kept(html: str, expected: str) -> None:
    assert html_sections(html) == [(None, expected)]
    (document,) = load_bytes(html.encode(), "html")
    assert document.page_content == expected


def test_ingest_adds_a_headings_only_file(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "toc.md"
    path.write_text("# Warranty terms\n## Seven years on the heating element\n")
    store = DictStore(make_settings())
    report = ingest(store, [path])  # type: ignore[arg-type]
    assert [Path(f.path).name for f in report.added] == ["toc.md"] and not report.skipped
    (text,) = [t for t, _ in store.chunks.values()]
    assert "Seven years on the heating element" in text


# --- 8. a size cap on reading -----------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "limit", "reason"),
    [
        (1001, 1000, None),  # checked below: over by one byte
        (3 * 1024 * 1024, 1024 * 1024, "over 1 MB (the ingest limit): 3 MB"),
        (1024 * 1024 + 512 * 1024, 1024 * 1024, "over 1 MB (the ingest limit): 1.5 MB"),
    ],
)
def test_a_file_over_the_limit_is_skipped_unread(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    limit: int,
    reason: str | None,
) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"a" * size)
    small = tmp_path / "small.txt"
    small.write_bytes(b"ok")
    reads: list[int] = []
    original = Path.open

    class Counted(io.BufferedReader):
        def read(self, n: int | None = -1) -> bytes:
            reads.append(-1 if n is None else n)
            return super().read(n)

    def counted(self: Path, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return Counted(original(self, "rb", buffering=0))  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", counted)
    with pytest.raises(SkippedFile, match=r"^over .* \(the ingest limit\)") as caught:
        read_bytes(path, limit)
    assert reads == []  # the size said so: not a byte read
    assert read_bytes(small, limit) == b"ok" and reads == [limit + 1]  # the probe works
    if reason:
        assert caught.value.reason == reason


@pytest.mark.parametrize("size", [0, 1, 999, 1000])
def test_a_file_up_to_the_limit_is_read_whole(tmp_path: Path, size: int) -> None:
    path = tmp_path / "fits.txt"
    path.write_bytes(b"b" * size)
    assert read_bytes(path, 1000) == b"b" * size


def test_a_file_that_grows_while_read_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What stat says may be stale (a log file being written): the read itself is capped.
    path = tmp_path / "growing.log"
    path.write_bytes(b"c" * 10)

    def stale(fd: int) -> os.stat_result:
        return os.stat_result((0o100644, 0, 0, 1, 0, 0, 10, 0, 0, 0))

    path.write_bytes(b"c" * 5000)
    monkeypatch.setattr("tools.documents.loaders.os.fstat", stale)
    with pytest.raises(SkippedFile, match=r"over .*the ingest limit"):
        read_bytes(path, 1000)


def test_ingest_reports_a_big_file_and_goes_on(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tools.documents.loaders.MAX_FILE_BYTES", 1024 * 1024)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "huge.txt").write_bytes(b"line of text\n" * (3 * 1024 * 1024 // 13))
    (folder / "small.md").write_text("# Note\n\nKeep the receipt.\n")
    store = DictStore(make_settings())
    report = ingest(store, [folder])  # type: ignore[arg-type]
    assert [Path(f.path).name for f in report.added] == ["small.md"]
    assert [(Path(p.path).name, p.reason) for p in report.skipped] == [
        ("huge.txt", "over 1 MB (the ingest limit): 3.0 MB")
    ]
    assert report.failed == []


def test_the_limit_is_200_mb() -> None:
    # The README and the web page's upload limit (max_file_size "200mb") say so.
    assert MAX_FILE_BYTES == 200 * 1024 * 1024
