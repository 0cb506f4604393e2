"""Bytes that are not UTF-8 (a file name from another system, a line typed in another
encoding): a clear error or an escape, never a UnicodeError traceback; the rest goes on.

Under a UTF-8 locale Python's stdin and stdout are strict (``PYTHONIOENCODING=utf-8``
makes them so here, as on a desktop); file names and ``sys.argv`` carry such bytes as
lone surrogates, which Chroma cannot store or look up.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.cli.console import tolerate_undecodable_text
from tests.conftest import ROOT
from tools.documents.ingest import NOT_UTF8_PATH, collect_files
from tools.text import is_utf8

LATIN1_NAME = os.fsdecode(b"r\xe9sum\xe9.txt")  # "résumé.txt" written by a Latin-1 system


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The CLI with strict UTF-8 stdin and stdout, as under a desktop's UTF-8 locale."""
    return subprocess.run(
        [sys.executable, "-m", "apps.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "ASSISTANT_MODEL__BACKEND": "fake", "PYTHONIOENCODING": "utf-8"},
        timeout=180,
    )


def _strict(data: bytes = b"") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")


def test_strict_streams_read_and_print_what_is_not_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin, stdout = _strict(b"caf\xe9\n"), _strict()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    tolerate_undecodable_text()
    assert sys.stdin.readline() == "caf\udce9\n"  # as sys.argv has it: the graph refuses it
    sys.stdout.write("r\udce9sum\udce9 \ud800\n")
    sys.stdout.flush()
    assert stdout.buffer.getvalue() == b"r\\udce9sum\\udce9 \\ud800\n"  # type: ignore[attr-defined]


def test_streams_set_up_otherwise_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    monkeypatch.setattr(sys, "stdout", chosen)
    monkeypatch.setattr(sys, "stdin", io.StringIO("no reconfigure here"))
    tolerate_undecodable_text()
    assert chosen.errors == "replace"


@pytest.mark.parametrize(
    ("text", "storable"),
    [("résumé.txt", True), (LATIN1_NAME, False), ("\ud800", False), ("", True)],
)
def test_is_utf8(text: str, storable: bool) -> None:
    assert is_utf8(text) is storable


@pytest.mark.parametrize("named", ["folder", "file", "folder above"])
def test_a_path_that_is_not_utf8_fails_with_its_reason(tmp_path: Path, named: str) -> None:
    folder = tmp_path / (LATIN1_NAME + ".d" if named == "folder above" else "docs")
    folder.mkdir()
    (folder / "plain.txt").write_text("plain words")
    odd = folder / (LATIN1_NAME if named != "folder above" else "inner.txt")
    odd.write_text("words in a file with an odd name")
    plan = collect_files([odd if named == "file" else folder])
    if named == "folder above":
        assert plan.files == []
        assert {p.reason for p in plan.failed} == {NOT_UTF8_PATH}
        assert len(plan.failed) == 2  # each file under it, named
    else:
        assert [(p.path, p.reason) for p in plan.failed] == [(str(odd), NOT_UTF8_PATH)]
        assert [p.name for p, _ in plan.files] == ([] if named == "file" else ["plain.txt"])


def test_ingest_stores_the_rest_and_names_the_file_it_cannot(tmp_path: Path) -> None:
    folder = tmp_path / "my docs"
    folder.mkdir()
    (folder / "plain.txt").write_text("The Glass Tower was finished in 1911.")
    (folder / LATIN1_NAME).write_text("words in a file with an odd name")
    done = run("ingest", str(folder))
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "1 added" in stdout and "1 failed" in stdout
    assert "r\\udce9sum\\udce9.txt: its path is not UTF-8" in stdout.replace("\n", " ")
    listed = run("docs", "list")
    assert "plain.txt" in listed.stdout.decode()
    gone = run("docs", "remove", LATIN1_NAME)
    assert gone.returncode == 1
    assert "not in collection" in gone.stderr.decode()
    assert "Traceback" not in gone.stderr.decode()


def test_a_line_in_another_encoding_is_refused_and_the_chat_goes_on() -> None:
    done = run("chat", stdin=b"caf\xe9 ?\n/safety\n")
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "not UTF-8" in stderr
    assert "safety level moderate" in done.stdout.decode()


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["memory", "search", os.fsdecode(b"caf\xe9")], "'QUERY'"),
        (["memory", "forget", "fine-key", os.fsdecode(b"k\xe9")], "'KEY'"),
    ],
)
def test_a_text_argument_that_is_not_utf8_is_refused(args: list[str], what: str) -> None:
    done = run(*args)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert what in stderr and "not UTF-8 text" in stderr
    assert "Traceback" not in stderr and "Error executing" not in stderr
