"""Chromium's CPU time for the chat page, idle and per turn, on the fake model (cheap).

The page is served in this process and opened in Debian's chromium (headless, as in the
browser tests); CPU is the user plus system time of every chromium process, read from the
OS. The fake model waits ``--prompt`` seconds before its first word (the model reading
the prompt) and then streams ``--words`` words, ``--word-delay`` seconds apart. Printed
per turn: the CPU from the click on Send to the first reply text (the window in which
chromium competes with llama.cpp's prompt reading) and to the turn's end (Send enabled
again); then the medians, and the CPU of the idle page per second. From the repository
root:

    PYTHONPATH=. .venv/bin/python scripts/ui_cpu.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("ASSISTANT_DATA_DIR", tempfile.mkdtemp(prefix="ui-cpu-"))

import psutil

from apps.ui.page import build_ui, launch_options, queued
from apps.ui.service import ChatService
from graph.settings import load_settings
from scripts.ui_ttft import FIRST_TEXT
from tests.integration.test_ui import CHROMIUM, CHROMIUM_ARGS, free_port
from tools.memory import open_memory
from tools.models import FakeChatModel


def chromium_cpu() -> float:
    """User plus system CPU seconds of every chromium process this process started."""
    total = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" in proc.name():
                times = proc.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--prompt", type=float, default=0.7, help="seconds to the first word")
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--word-delay", type=float, default=0.03)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle page timed")
    parser.add_argument(
        "--init", default="", help="a script file run before the page's own (to try a change)"
    )
    args = parser.parse_args()

    def reply(messages: list[Any]) -> str:
        time.sleep(args.prompt)
        return " ".join(f"word{i}" for i in range(args.words))

    settings = load_settings(
        model={"backend": "fake"},
        generation={"max_new_tokens": args.words + 10},
        long_term={"enabled": False},
        safety={"judge": "off"},
    )
    model = FakeChatModel(reply=reply, delay=args.word_delay)
    from playwright.sync_api import sync_playwright

    firsts: list[float] = []
    wholes: list[float] = []
    with open_memory(settings) as memory:
        app = build_ui(ChatService(settings, memory, model=model))
        queued(app)
        _, url, _ = app.launch(
            prevent_thread_lock=True, quiet=True, **launch_options("127.0.0.1", free_port())
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(600_000)
            if args.init:
                page.add_init_script(path=args.init)
            page.goto(url)
            page.wait_for_selector("#login")
            page.locator("#user-name textarea, #user-name input").first.fill("ui")
            page.click("#login")
            page.wait_for_selector("#who:has-text('ui')")
            time.sleep(1.0)
            before = chromium_cpu()
            time.sleep(args.idle)
            idle = (chromium_cpu() - before) / args.idle

            for n in range(args.rounds + 1):  # the first is a warm-up
                page.click("#new-thread")
                page.wait_for_function(
                    "document.querySelectorAll('#chat .bot:not(.pending)').length === 0"
                )
                time.sleep(0.5)
                page.evaluate(FIRST_TEXT)
                page.locator("#message textarea").fill(f"question {n}")
                # A click without Playwright's checks before it (they cost CPU too).
                box = page.locator("#send").bounding_box()
                assert box is not None
                start = chromium_cpu()
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_function("window.__t1 !== null", polling=20)
                first = chromium_cpu() - start
                page.locator("#send:not([disabled])").wait_for()
                whole = chromium_cpu() - start
                if n:
                    firsts.append(first)
                    wholes.append(whole)
                    print(f"turn {n}: to first text {first:.3f} s CPU, whole turn {whole:.3f} s")
            browser.close()
        app.close()
    print(f"idle page: {idle:.3f} s CPU per second")
    print(
        f"median CPU to first text {statistics.median(firsts):.3f} s, "
        f"whole turn {statistics.median(wholes):.3f} s ({args.rounds} turns, "
        f"load {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
