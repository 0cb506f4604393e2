"""Questions that need a yes (``memory clear``): off a terminal they name the flag."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

import apps.cli.console as console
import apps.cli.main as cli
import tools.memory.long_term as long_term


@pytest.fixture
def cleared(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The users whose memories were cleared (the store is never really opened)."""
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    calls: list[str] = []

    @contextmanager
    def store(settings: Any) -> Iterator[object]:
        yield object()

    def clear(store: object, user: str) -> int:
        calls.append(user)
        return 3

    monkeypatch.setattr(cli, "_long_term", store)
    monkeypatch.setattr(long_term, "clear", clear)
    return calls


@pytest.mark.parametrize("stdin", ["", "maybe\n", "perhaps\nlater\n"])
def test_off_a_terminal_with_no_answer_memory_clear_says_yes_is_needed(
    cleared: list[str], stdin: str
) -> None:
    """Input ends before a yes or no (cron, CI, ``< /dev/null``): the message names --yes."""
    done = CliRunner().invoke(cli.app, ["memory", "clear", "--user", "priya"], input=stdin)
    assert done.exit_code == 2, done.output
    flat = " ".join(done.output.split())
    assert "stdin is not a terminal" in flat and "add --yes" in flat, flat
    assert "nothing was deleted" in flat
    assert "Aborted" not in flat
    assert cleared == []


@pytest.mark.parametrize(
    ("stdin", "code", "users"),
    [("y\n", 0, ["priya"]), ("yes\n", 0, ["priya"]), ("n\n", 1, []), ("no\n", 1, [])],
)
def test_off_a_terminal_a_piped_answer_still_counts(
    cleared: list[str], stdin: str, code: int, users: list[str]
) -> None:
    done = CliRunner().invoke(cli.app, ["memory", "clear", "--user", "priya"], input=stdin)
    assert done.exit_code == code, done.output
    assert cleared == users
    assert "Aborted" not in done.output


@pytest.mark.parametrize(
    ("answer", "code", "users"),
    [("y\n", 0, ["priya"]), ("n\n", 1, []), ("\n", 1, []), ("", 1, [])],
)
def test_at_a_terminal_memory_clear_asks(
    cleared: list[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    users: list[str],
) -> None:
    monkeypatch.setattr(console, "stdin_is_terminal", lambda: True)
    done = CliRunner().invoke(cli.app, ["memory", "clear", "--user", "priya"], input=answer)
    assert done.exit_code == code, done.output
    assert "Forget everything about user priya?" in done.output
    assert cleared == users
    if not users:
        assert "nothing was deleted" in done.output
    else:
        assert "forgot 3 memories of user priya" in done.output


@pytest.mark.parametrize("flag", ["--yes", "-y"])
def test_yes_clears_without_a_question(cleared: list[str], flag: str) -> None:
    done = CliRunner().invoke(cli.app, ["memory", "clear", "--user", "priya", flag])
    assert done.exit_code == 0, done.output
    assert "Forget everything" not in done.output
    assert cleared == ["priya"]


def test_a_closed_or_missing_stdin_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdin", closed)
    assert console.stdin_is_terminal() is False
    monkeypatch.setattr(sys, "stdin", None)
    assert console.stdin_is_terminal() is False
