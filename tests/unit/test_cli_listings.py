"""Listings (``docs list``, ``memory list``/``search``, ``threads list``): the plain rows
and ``--json`` carry the same fields, one row per item, cells split by real tabs."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import apps.cli.main as cli
from tests.conftest import assistant
from tools.documents.store import SourceInfo
from tools.memory.long_term import Memory

FILES = [
    SourceInfo(
        source="/srv/docs/report.md",
        name="report.md",
        chunks=3,
        file_hash="a" * 64,
        ingested_at="2026-12-01T03:00:00+00:00",
        kind="markdown",
        chunking="200/30",
        added_by="José",
    ),
    # Ingested by `assistant ingest`: no adder recorded, and an interrupted write.
    SourceInfo(
        source="/srv/docs/a.txt", name="a.txt", chunks=1, file_hash="b" * 64, complete=False
    ),
    # A file name with a tab, a newline and a backslash in it stays one row.
    SourceInfo(
        source="/srv/docs/odd\tna\nme\\.txt",
        name="odd\tna\nme\\.txt",
        chunks=2,
        file_hash="c" * 64,
        added_by="bob",
    ),
]


class _Store:
    name = "default"

    def sources(self) -> list[SourceInfo]:
        return FILES


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[list[str]], Any]:
    """``docs list``'s header, plain rows and JSON, over :data:`FILES`."""
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    monkeypatch.setattr(cli, "_document_store", lambda settings, collection: _Store())
    plain = CliRunner().invoke(cli.app, ["docs", "list"])
    assert plain.exit_code == 0, plain.output
    as_json = CliRunner().invoke(cli.app, ["docs", "list", "--json"])
    assert as_json.exit_code == 0, as_json.output
    header = plain.stderr.splitlines()[0].split("\t")
    rows = [line.split("\t") for line in plain.stdout.splitlines()]
    return header, rows, json.loads(as_json.stdout)


def test_plain_rows_carry_every_field_the_json_does(
    listed: tuple[list[str], list[list[str]], Any],
) -> None:
    header, rows, as_json = listed
    assert len(rows) == len(as_json) == len(FILES)
    assert len(header) == len(as_json[0]) == len(fields(SourceInfo))
    assert all(len(row) == len(header) for row in rows), rows
    for row, item in zip(rows, as_json, strict=True):
        cells = dict(zip(header, row, strict=True))
        assert cells["added by"] == (item["added_by"] or "-")
        assert cells["chunks"] == str(item["chunks"])
        assert cells["sha256"] == item["file_hash"]
        assert cells["kind"] == (item["kind"] or "-")
        assert cells["ingested at"] == (item["ingested_at"] or "-")
        assert cells["state"] == ("complete" if item["complete"] else "incomplete: ingest it again")


def test_the_adder_is_shown_in_plain_output(listed: tuple[list[str], list[list[str]], Any]) -> None:
    header, rows, _ = listed
    column = header.index("added by")
    assert [row[column] for row in rows] == ["José", "-", "bob"]


def test_a_name_with_a_tab_or_newline_stays_one_row(
    listed: tuple[list[str], list[list[str]], Any],
) -> None:
    header, rows, as_json = listed
    assert rows[2][header.index("name")] == "odd\\tna\\nme\\\\.txt"
    assert as_json[2]["name"] == "odd\tna\nme\\.txt"  # JSON keeps the name as it is


def test_a_new_field_of_a_stored_file_becomes_a_column() -> None:
    from apps.cli.console import field_columns

    # The columns come from SourceInfo itself: none is forgotten when a field is added.
    names = [name for name, _ in field_columns(SourceInfo, cli.SOURCE_HEADERS)]
    assert sorted(names) == sorted(f.name for f in fields(SourceInfo))
    assert names[-1] == "source"  # the long path last

    @dataclass
    class Later:
        name: str
        owner_team: str

    assert field_columns(Later, {"name": "name"}) == [
        ("name", "name"),
        ("owner_team", "owner team"),
    ]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("Ana María", "Ana María"),  # a space is kept: the tab splits the cells
        ("a\tb", "a\\tb"),
        ("line\nnext\r", "line\\nnext\\r"),
        ("\x1b[31mred", "\\x1b[31mred"),  # no escape sequence reaches the terminal
        ("\x85", "\\x85"),
        ("C:\\x", "C:\\\\x"),
        (None, "-"),
        ("", "-"),
        (0.5, "0.5"),
    ],
)
def test_a_cell_is_one_line_without_a_tab_or_control_character(value: object, cell: str) -> None:
    from apps.cli.console import plain_cell

    assert plain_cell(value) == cell


MEMORIES = [
    Memory(key="k1", kind="fact", text="My name is Ana María.", created="2026-12-01T03:00:00"),
    Memory(
        key="k2",
        kind="turn",
        text="two\nlines",
        reply="a reply\twith a tab",
        thread_id="t-1",
        created="2026-12-01T03:01:00",
        score=0.8765,
    ),
]


def test_memories_as_rows_carry_every_field_the_json_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli._print_memories(MEMORIES, as_json=False)
    plain = capsys.readouterr()
    cli._print_memories(MEMORIES, as_json=True)
    as_json = json.loads(capsys.readouterr().out)
    header = plain.err.splitlines()[0].split("\t")
    rows = [line.split("\t") for line in plain.out.splitlines()]
    assert len(header) == len(as_json[0]) == len(fields(Memory))
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows), rows
    second = dict(zip(header, rows[1], strict=True))
    assert second["reply"] == "a reply\\twith a tab" and second["thread id"] == "t-1"
    assert second["score"] == "0.88" and second["text"] == "two\\nlines"
    first = dict(zip(header, rows[0], strict=True))
    assert first["text"] == "My name is Ana María." and first["score"] == first["reply"] == "-"


def test_thread_rows_carry_every_field_the_json_does(tmp_path: Path) -> None:
    env = {"ASSISTANT_DATA_DIR": str(tmp_path)}
    assert assistant("chat", "--thread", "rows-1", "-m", "hi", **env).returncode == 0
    plain = assistant("threads", "list", **env)
    as_json = json.loads(assistant("threads", "list", "--json", **env).stdout)
    header = plain.stderr.splitlines()[0].split("\t")
    rows = [line.split("\t") for line in plain.stdout.splitlines()]
    assert sorted(header) == sorted(h.replace("_", " ") for h in as_json[0])
    assert rows == [[str(as_json[0][key]) for key in as_json[0]]]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, é and 日本", "plain text, é and 日本"),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),  # kept: a reply's layout
        ("\x1b[2Jcleared", "\\x1b[2Jcleared"),  # CSI: clear the screen
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # OSC: retitle the window, and BEL
        ("\x9b31mred", "\\x9b31mred"),  # the one-character C1 CSI
        ("back\x08space and \x7f", "back\\x08space and \\x7f"),
        ("carriage\rreturn", "carriage\\x0dreturn"),  # would overwrite the line
        ("zero\u200bwidth", "zero\u200bwidth"),  # not a control: left to the terminal
    ],
)
def test_terminal_text_writes_out_control_characters(text: str, shown: str) -> None:
    from apps.cli.console import terminal_text

    assert terminal_text(text) == shown


def _commands(command: Any, path: tuple[str, ...] = ()) -> Any:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def test_no_command_help_shows_docstring_markup() -> None:
    # A command's docstring is its --help page: Sphinx roles and double backticks there
    # are printed as they are (":func:`apps.turns.recorded_owner`").
    import re

    import typer

    markup = re.compile(r"``|:(?:func|meth|class|data|mod|attr):`")
    found = [
        (name, text[:80])
        for name, command in _commands(typer.main.get_command(cli.app))
        for text in [
            command.callback.__doc__ or "",
            *(getattr(p, "help", "") or "" for p in command.params),
        ]
        if markup.search(text)
    ]
    assert len(list(_commands(typer.main.get_command(cli.app)))) > 20
    assert found == []
