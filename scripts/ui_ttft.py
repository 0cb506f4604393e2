"""Time to first token of the same turn in the web UI and through the CLI's turn, one run.

The UI: from the click on Send in a real browser (Debian's chromium) to the first reply
text on the page (not Gradio's pending dots). The CLI: from calling ``ChatSession.run``
(what ``assistant chat`` runs) to its first token. Both use one model instance, a new
thread each, and the same question with one letter changed (so llama.cpp's prompt cache
cannot hand the second the first one's prompt); the order alternates each round. The
figure is the median of the rounds' own UI/CLI ratios (each round's turns run back to
back, so a change in the machine's load touches them all), with the ratio of the medians
beside it. Long-term memory is off so every prompt is the same size.

Each round also times the model alone on the CLI turn's prompt (the system prompt and the
question, another letter again; no graph, no masking: the floor under the CLI's figure),
so the CLI's time can be read against this machine's speed: the CLI's absolute time moved
from 0.72 s to 1.35 s between two runs on different machines with the same work (the same
prompt, the same tokens evaluated), and only CLI/model says what the code adds. From the
repository root:

    PYTHONPATH=. .venv/bin/python scripts/ui_ttft.py --model default
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ASSISTANT_DATA_DIR", tempfile.mkdtemp(prefix="ui-ttft-"))

from langchain_core.messages import HumanMessage, SystemMessage

from apps.cli.main import ChatSession, new_thread_id
from apps.ui.page import build_ui, launch_options, queued
from apps.ui.service import ChatService
from graph.settings import load_settings
from tests.integration.test_ui import CHROMIUM, CHROMIUM_ARGS, free_port
from tools.memory import open_memory
from tools.models import get_chat_model
from tools.models.files import DEFAULT_MODEL, prepare_split_model, smollm2_path
from tools.prompting import system_text
from tools.routing import load_system_prompt

QUESTION = "Question {tag}: what does a Python list comprehension do? Answer in one sentence."
FIRST_TEXT = """() => {
    window.__t0 = null; window.__t1 = null;
    const bots = () => document.querySelectorAll('#chat .bot:not(.pending)').length;
    const before = bots();
    document.querySelector('#send').addEventListener(
        'click', () => { window.__t0 = performance.now(); }, {capture: true, once: true});
    const chat = document.querySelector('#chat');
    const seen = new MutationObserver(() => {
        const all = chat.querySelectorAll('.bot:not(.pending)');
        if (window.__t1 === null && all.length > before &&
                all[all.length - 1].innerText.trim()) {
            window.__t1 = performance.now();
            seen.disconnect();
        }
    });
    seen.observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def tag(n: int) -> str:
    """The ``n``-th question's own letters: A to T (U, V, W are the warm-up's), then A1..."""
    return chr(65 + n % 20) + (str(n // 20) if n >= 20 else "")


def model_path(choice: str) -> Path:
    if choice == "smollm2":
        return smollm2_path()
    return prepare_split_model(Path.home() / ".cache" / "local-assistant-tests", DEFAULT_MODEL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["default", "smollm2"], default="default")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    settings = load_settings(
        model={"backend": "llamacpp", "gguf_path": str(model_path(args.model))},
        generation={"do_sample": False, "max_new_tokens": 8},
        long_term={"enabled": False},
        safety={"judge": "off"},
    )
    model = get_chat_model(settings)
    from playwright.sync_api import sync_playwright

    cli_times: list[float] = []
    ui_times: list[float] = []
    raw_times: list[float] = []
    system = system_text(load_system_prompt(settings.prompts.directory / "system.md"), "")

    def raw_turn(text: str) -> float:
        """The model alone on the prompt the CLI's turn sends: to its first text."""
        started = time.perf_counter()
        firsts: list[float] = []
        for chunk in model.stream([SystemMessage(system), HumanMessage(text)]):
            if chunk.text and not firsts:
                firsts.append(time.perf_counter() - started)
        assert firsts
        return firsts[0]

    with open_memory(settings) as memory:
        service = ChatService(settings, memory, model=model)
        session = ChatSession(settings, new_thread_id(), None, memory, user="cli", model=model)
        app = build_ui(service)
        queued(app)
        _, url, _ = app.launch(
            prevent_thread_lock=True, quiet=True, **launch_options("127.0.0.1", free_port())
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.set_default_timeout(600_000)
            page.goto(url)
            page.wait_for_selector("#login")
            page.locator("#user-name textarea, #user-name input").first.fill("ui")
            page.click("#login")
            page.wait_for_selector("#who:has-text('ui')")

            def cli_turn(text: str) -> float:
                session.thread_id = new_thread_id()
                started = time.perf_counter()
                firsts: list[float] = []

                def on_token(token: str) -> None:
                    if token and not firsts:
                        firsts.append(time.perf_counter() - started)

                session.run(text, on_token)  # what `assistant chat` does
                assert firsts
                return firsts[0]

            def ui_turn(text: str) -> float:
                page.click("#new-thread")
                page.wait_for_function(
                    "document.querySelectorAll('#chat .bot:not(.pending)').length === 0"
                )
                page.evaluate(FIRST_TEXT)
                page.locator("#message textarea").fill(text)
                page.click("#send")
                # The observer above stamps the time; polling it every animation frame
                # (Playwright's default) would make chromium draw frames a user's browser
                # does not, on the same two cores as the model reading the prompt.
                page.wait_for_function("window.__t1 !== null", polling=250)
                # The whole turn ends (Send is enabled again) before the next one starts.
                page.locator("#send:not([disabled])").wait_for()
                return float(page.evaluate("(window.__t1 - window.__t0) / 1000"))

            # Warm-up: loads the weights and the embeddings, fills the system prompt cache.
            cli_turn(QUESTION.format(tag="W"))
            ui_turn(QUESTION.format(tag="V"))
            raw_turn(QUESTION.format(tag="U"))
            turns = [(cli_turn, cli_times), (ui_turn, ui_times), (raw_turn, raw_times)]
            for n in range(args.rounds):
                # Each round its own letters, and each kind of turn first in turn.
                for k in range(len(turns)):
                    run, times = turns[(n + k) % len(turns)]
                    times.append(run(QUESTION.format(tag=tag(3 * n + k))))
            browser.close()
        app.close()
    cli, ui = statistics.median(cli_times), statistics.median(ui_times)
    raw = statistics.median(raw_times)
    print(f"model {args.model}, {args.rounds} rounds, load {os.getloadavg()[0]:.2f}")
    print("cli ttft s:", " ".join(f"{t:.3f}" for t in cli_times), f"median {cli:.3f}")
    print("ui  ttft s:", " ".join(f"{t:.3f}" for t in ui_times), f"median {ui:.3f}")
    print("model alone s:", " ".join(f"{t:.3f}" for t in raw_times), f"median {raw:.3f}")
    over = sorted(c / r for c, r in zip(cli_times, raw_times, strict=True))
    print(f"cli / model alone: median of the rounds {statistics.median(over):.3f}")
    ratios = sorted(u / c for u, c in zip(ui_times, cli_times, strict=True))
    print("ui / cli per round:", " ".join(f"{r:.2f}" for r in ratios))
    paired = statistics.median(ratios)
    print(f"ui / cli: median of the rounds {paired:.3f}, of the medians {ui / cli:.3f}")


if __name__ == "__main__":
    main()
