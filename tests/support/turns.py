"""Send turns to one thread from a process of its own, the way ``assistant chat -m`` does.

The CLI's chat session and turn runner, with a fake model that streams slowly, so that
turns from several processes really overlap (the real CLI's fake model answers in
microseconds, and process start-up would keep them apart). Used by the tests of one
turn at a time per thread::

    python -m tests.support.turns --thread shared --delay 0.02 "one" "two" "three"

Prints one JSON line per turn (``text``, ``status``: 0 done, 1 refused message, 75 busy)
and exits with the highest status.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys

from langchain_core.messages import BaseMessage

from apps.cli.main import ChatSession, _run_turn
from graph.settings import load_settings
from tools.memory import open_memory
from tools.models import FakeChatModel


def _reply(messages: list[BaseMessage]) -> str:
    return f"reply to {messages[-1].text} " + "and some more words " * 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thread", required=True)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds per streamed word")
    parser.add_argument("--wait", type=float, default=None, help="busy wait (s)")
    parser.add_argument("texts", nargs="+")
    args = parser.parse_args()
    settings = load_settings()
    model = FakeChatModel(reply=_reply, delay=args.delay)
    worst = 0
    with open_memory(settings) as memory:
        session = ChatSession(settings, args.thread, None, memory, wait=args.wait, model=model)
        for text in args.texts:
            with contextlib.redirect_stdout(io.StringIO()):
                status = _run_turn(session, text, as_json=True)
            print(json.dumps({"text": text, "status": status}), flush=True)
            worst = max(worst, status)
    sys.exit(worst)


if __name__ == "__main__":
    main()
