"""What every ``assistant`` command shares: the consoles and loading settings."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from graph.settings import Settings, SettingsError, load_settings

out = Console()
err = Console(stderr=True)


def stdin_is_terminal() -> bool:
    """Whether someone can answer a question on stdin (a pipe, a file or cron cannot)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # closed or detached
        return False


def confirm_or_exit(question: str, *, nothing_done: str, flag: str = "--yes") -> None:
    """Ask ``question``; exit unless the answer is yes.

    An answer piped in (``echo y | ...``) still counts. When input ends with no answer
    and stdin is not a terminal, nothing could have answered: the message says which flag
    confirms without a question (``typer.confirm`` printed only "Aborted.").

    Args:
        question: The yes/no question.
        nothing_done: What was left as it was, for the message (``nothing was deleted``).
        flag: The option that confirms without a question.

    Raises:
        typer.Exit: Code 2 when input ended off a terminal, 1 when the answer is no (or
            Ctrl-D / Ctrl-C at a terminal).
    """
    try:
        answer = typer.confirm(question)
    except typer.Abort:  # input ended (or Ctrl-C) before an answer
        if not stdin_is_terminal():
            err.print(
                f"[red]no answer to {escape(repr(question))}: stdin is not a terminal; add "
                f"{escape(flag)} to confirm without a question ({escape(nothing_done)})[/red]"
            )
            raise typer.Exit(2) from None
        answer = False
    if not answer:
        err.print(f"Not confirmed: {nothing_done}.", markup=False, highlight=False)
        raise typer.Exit(1)


class _ReplyLine:
    """Whether a streamed reply left stdout in the middle of a line (nothing ended it yet).

    A log line goes to stderr, which a terminal shows on the same screen: written then, it
    would carry on the reply's line ("...fake model.INFO assistant.memory: ...").
    """

    def __init__(self) -> None:
        self._open = False
        self._lock = threading.Lock()

    def wrote(self, text: str) -> None:
        if text:
            with self._lock:
                self._open = not text.endswith("\n")

    def take(self) -> bool:
        """Whether the line was open; it counts as ended from now on."""
        with self._lock:
            was, self._open = self._open, False
            return was


reply_line = _ReplyLine()


def terminal_text(text: str) -> str:
    r"""Stored text as a terminal may show it: control characters written out as ``\xNN``.

    A message, a reply or a summary is what some user or some document wrote: an escape
    sequence in it ("\x1b[2J" clears the screen, "\x1b]0;...\x07" retitles the window)
    would act on the terminal of whoever prints it. Line breaks and tabs stay; every other
    C0 control, DEL and the C1 controls (U+0080-U+009F, which some terminals also obey) are
    written out, as :func:`plain_cell` writes them in listings.
    """
    if text.isprintable():
        return text
    return "".join(
        f"\\x{ord(char):02x}"
        if (ord(char) < 0x20 and char not in "\n\t") or 0x7F <= ord(char) < 0xA0
        else char
        for char in text
    )


def print_inline(text: str) -> None:
    """Print part of a streamed reply where the last part ended (no newline added).

    Control characters are written out (:func:`terminal_text`): a reply may repeat what a
    document or an earlier message planted.
    """
    out.print(terminal_text(text), end="", markup=False, highlight=False, soft_wrap=True)
    reply_line.wrote(text)


def end_reply_line() -> None:
    """End the streamed reply's line on stdout."""
    out.print()
    reply_line.take()


class OwnLineFormatter(logging.Formatter):
    """Log lines that start on their own line, even in the middle of a streamed reply."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as ``LOG_FORMAT`` has it, after a newline if a reply's line is open."""
        text = super().format(record)
        return "\n" + text if reply_line.take() else text


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def tolerate_undecodable_text() -> None:
    """Read and print text that is not UTF-8 instead of ending with a traceback.

    A file name from another system, a pasted line in another encoding or a lone
    surrogate in a stored reply is text Python cannot encode or decode strictly, and
    stdin and stdout are strict under a UTF-8 locale (stderr already backslash-escapes).
    Lines read keep such bytes as surrogates, as ``sys.argv`` does, so the graph refuses
    the message with its reason (not UTF-8) and the chat goes on; text printed shows them
    escaped (a backslash and the code point). A stream set up otherwise
    (``PYTHONIOENCODING=...:replace``) is left as it is.
    """
    for stream, errors in ((sys.stdin, "surrogateescape"), (sys.stdout, "backslashreplace")):
        if getattr(stream, "errors", None) != "strict":
            continue
        try:
            stream.reconfigure(errors=errors)  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            continue  # a replaced stream (a test's, a closed one): it is not ours to set


def why_not_written(path: Path, exc: OSError) -> str:
    """Why ``path`` could not be written, in words (``[Errno 21] Is a directory: 'x'`` is not).

    A missing folder is named (the path alone does not say which part is missing).
    """
    folder = path.parent
    if not folder.exists():
        return f"no such folder: {folder}"
    if path.is_dir():
        return "it is a folder"
    return exc.strerror or str(exc)


def cli_settings() -> Settings:
    """Load the settings and configure logging; invalid settings end the command (exit 2)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OwnLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    return settings


# --- listings: one row per item, tab-separated, the same fields as --json ---------------

_CELL_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def plain_cell(value: object) -> str:
    r"""A value as one cell of a listing's row: ``-`` for none, one line, no tab.

    Text may hold a tab, a newline or another control character (a file name may hold any
    byte but ``/``; a remembered message a pasted newline): written as ``\t``, ``\n``,
    ``\x1b`` (and a backslash as ``\\``), so each row stays one line of the same columns
    and nothing in a cell moves the terminal's cursor.
    """
    if value is None or value == "":
        return "-"
    text = str(value)
    return "".join(
        _CELL_ESCAPES.get(char)
        or (f"\\x{ord(char):02x}" if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 else char)
        for char in text
    )


def field_columns(cls: type, headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """A listing's columns: every field of the dataclass its ``--json`` dumps, with a header.

    The fields come from ``cls`` itself, so a field added there is a column too (after
    those ``headers`` orders, headed by its name): the plain rows and ``--json`` cannot
    drift apart.

    Args:
        cls: The dataclass of one listed item.
        headers: Field name to header, in the columns' order.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    ordered = [n for n in headers if n in names] + [n for n in names if n not in headers]
    return [(n, headers.get(n, n.replace("_", " "))) for n in ordered]


def print_rows(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    """Print a listing: the header on stderr, each row on stdout, cells tab-separated.

    A terminal shows the header above the rows; a pipe or a file gets the rows only, with
    real tabs (rich's print turns a tab into spaces, which made a cell holding a space,
    "Ana María", look like two columns). Cells go through :func:`plain_cell`.
    """
    err.file.write("\t".join(headers) + "\n")
    err.file.flush()
    stream = out.file
    for row in rows:
        stream.write("\t".join(plain_cell(cell) for cell in row) + "\n")
    stream.flush()


def row_of(item: Any, columns: Iterable[tuple[str, str]]) -> list[object]:
    """The cells of one dataclass item, in the columns' order."""
    return [getattr(item, name) for name, _ in columns]
