"""What every ``assistant`` command shares: the consoles and loading settings."""

from __future__ import annotations

import logging
import sys
import threading

import typer
from rich.console import Console
from rich.markup import escape

from graph.settings import Settings, SettingsError, load_settings

out = Console()
err = Console(stderr=True)


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


def print_inline(text: str) -> None:
    """Print part of a streamed reply where the last part ended (no newline added)."""
    out.print(text, end="", markup=False, highlight=False, soft_wrap=True)
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
