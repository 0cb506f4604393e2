"""A log line during or after a streamed CLI reply starts on its own line."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apps.cli.console import OwnLineFormatter, end_reply_line, err, out, print_inline, reply_line
from apps.cli.main import ChatSession, _run_turn
from graph.settings import Settings
from tools.memory import open_memory
from tools.models import FakeChatModel

log = logging.getLogger("assistant.test_log_lines")


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """stdout and stderr on one screen, as in a terminal, with the CLI's log handler."""
    shared = io.StringIO()
    # rich's ``Console.file`` reads sys.stdout/sys.stderr at each use unless set: patch
    # what it keeps (``_file``, None) so the undo does not pin this test's capture streams
    # on the CLI's consoles for every later test.
    monkeypatch.setattr(out, "_file", shared)
    monkeypatch.setattr(err, "_file", shared)
    handler = logging.StreamHandler(shared)
    handler.setFormatter(OwnLineFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("assistant")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    reply_line.take()
    yield shared
    logger.removeHandler(handler)
    logger.setLevel(level)
    reply_line.take()


@pytest.fixture
def session(make_settings: Callable[..., Settings]) -> Iterator[ChatSession]:
    settings = make_settings()
    model = FakeChatModel(reply="A reply from the fake model.")
    with open_memory(settings) as memory:
        yield ChatSession(settings, "log-lines", None, memory, model=model)


def logging_while_streaming(session: ChatSession) -> None:
    """Log once after the first token and once after the turn, before its line is ended."""
    run = session.run

    def run_and_log(text: str, on_token: Callable[[str], None], stop: Any = None) -> Any:
        said: list[str] = []

        def token(t: str) -> None:
            on_token(t)
            if not said:
                said.append(t)
                log.info("during the reply")

        state = run(text, token, stop)
        log.info("after the reply")
        return state

    session.run = run_and_log  # type: ignore[method-assign]


def test_log_lines_during_and_after_a_streamed_reply_start_their_own_line(
    session: ChatSession, screen: io.StringIO
) -> None:
    logging_while_streaming(session)
    assert _run_turn(session, "hello", as_json=False) == 0
    lines = screen.getvalue().splitlines()
    logged = [line for line in lines if "INFO" in line]
    assert len(logged) >= 2, lines
    during = lines.index("INFO assistant.test_log_lines: during the reply")
    assert lines[during - 1].strip() == "A"  # the reply's first token, ended by the log
    assert all(line.startswith("INFO assistant.") for line in logged), lines


def test_a_log_line_with_no_reply_open_adds_no_blank_line(screen: io.StringIO) -> None:
    log.info("first")
    print_inline("a whole line\n")
    log.info("second")
    print_inline("part of a reply")
    end_reply_line()
    log.info("third")
    assert screen.getvalue().splitlines() == [
        "INFO assistant.test_log_lines: first",
        "a whole line",
        "INFO assistant.test_log_lines: second",
        "part of a reply",
        "INFO assistant.test_log_lines: third",
    ]


def test_an_open_reply_line_is_ended_once_before_a_log_line(screen: io.StringIO) -> None:
    print_inline("part of")
    log.info("one")
    log.info("two")
    print_inline(" the reply")
    end_reply_line()
    assert screen.getvalue().splitlines() == [
        "part of",
        "INFO assistant.test_log_lines: one",
        "INFO assistant.test_log_lines: two",
        " the reply",
    ]
