"""The README's picture of the chat page: SmolLM2 answers from an uploaded document.

    .venv/bin/python scripts/ui_screenshot.py [docs/ui.png]

A throwaway data directory, the page on a free port of 127.0.0.1, Debian's chromium.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["ASSISTANT_DATA_DIR"] = tempfile.mkdtemp(prefix="ui-shot-")

from apps.ui.page import build_ui, launch_options, queued
from apps.ui.service import ChatService
from graph.settings import load_settings
from tests.integration.test_ui import CHROMIUM, CHROMIUM_ARGS, free_port
from tools.memory import open_memory
from tools.models.files import smollm2_path

DOCUMENT = """# The Glass Tower of Wexmoor

The Glass Tower of Wexmoor was designed by the architect Ida Frane. It was finished in
1911 and it is 47 metres tall.
"""


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ui.png")
    settings = load_settings(
        model={"backend": "llamacpp", "gguf_path": str(smollm2_path()), "n_ctx": 2048},
        generation={"do_sample": False, "max_new_tokens": 48},
        context={"max_prompt_tokens": 1024},
    )
    document = Path(tempfile.mkdtemp()) / "tower.md"
    document.write_text(DOCUMENT)
    from playwright.sync_api import sync_playwright

    with open_memory(settings) as memory:
        app = build_ui(ChatService(settings, memory))
        queued(app)
        _, url, _ = app.launch(
            prevent_thread_lock=True, quiet=True, **launch_options("127.0.0.1", free_port())
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(300_000)
            page.goto(url)
            page.wait_for_selector("#login")
            page.locator("#user-name textarea").fill("alice")
            page.click("#login")
            page.wait_for_selector("#who:has-text('alice')")
            page.click("#documents")
            page.locator("#upload input[type=file]").set_input_files([str(document)])
            page.locator("#ingest-report").get_by_text("added").wait_for()
            page.locator("#message textarea").fill(
                "My name is Alice. Who designed the Glass Tower of Wexmoor?"
            )
            page.click("#send")
            source = page.locator("#chat").get_by_text("Source [1]").first
            source.wait_for()
            page.locator("#send:not([disabled])").wait_for()
            source.click()
            page.click("#diagnostics")
            page.click("#memory")
            page.locator("#memories label").first.wait_for()
            page.screenshot(path=str(target), full_page=True)
            browser.close()
        app.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
