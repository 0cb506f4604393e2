"""The chat page in a real browser: Debian's chromium driven by Playwright.

Each test starts the page on a free port of 127.0.0.1 (in this process, so a test can read
what the fake model was called with) and stops it at the end. Every request each browser
context makes is recorded; a request to anywhere but the page's own server fails the test.
Playwright's own browser download cannot work offline: `make test` installs chromium
(`make browser`), and without it these tests fail and say so.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from langchain_core.embeddings import Embeddings
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from apps.ui.page import build_ui, launch_options, queued
from apps.ui.service import ChatService
from graph.settings import Settings
from tests.support.embeddings import word_vectors
from tools.memory import open_memory
from tools.memory.long_term import remember_turn
from tools.models import FakeChatModel

pytestmark = [
    pytest.mark.integration,
    # gradio 6.31's queue calls pandas 3 options that are deprecated; nothing of ours.
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LONG = " ".join(f"word{i}" for i in range(600))
WAIT_MS = 120_000
"""Upper bound for anything the page waits for (never a timing assertion)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "", None}
_SERVER_OUTSIDE: list[str] = []
_AUDITING: list[bool] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record every connection or name lookup of this process that is not to this machine."""
    if not _AUDITING:
        return
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    elif event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
    else:
        return
    if host not in LOCAL_HOSTS:
        _SERVER_OUTSIDE.append(f"{event} {host}")


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only while serving


@dataclass
class Server:
    url: str
    service: ChatService


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start the page for given settings (and model) on a free port; stopped at the end.

    While it runs, every socket connection and name lookup of this process (the page's
    server, the model, the stores) is recorded; one to another machine fails the test.
    """
    started: list[Any] = []
    stack: list[Any] = []
    _SERVER_OUTSIDE.clear()
    _AUDITING.append(True)

    def start(settings: Settings, model: Any = None, embeddings: Any = None) -> Server:
        memory_cm = open_memory(settings)
        memory = memory_cm.__enter__()
        stack.append(memory_cm)
        service = ChatService(settings, memory, model=model, embeddings=embeddings)
        page = build_ui(service)
        queued(page)
        _, url, _ = page.launch(
            prevent_thread_lock=True, quiet=True, **launch_options("127.0.0.1", free_port())
        )
        started.append(page)
        return Server(url.rstrip("/") + "/", service)

    yield start
    for page in started:
        page.close()
    for cm in stack:
        cm.__exit__(None, None, None)
    _AUDITING.clear()
    # The server side too (gradio, the stores, the model): nothing reached out.
    assert _SERVER_OUTSIDE == [], _SERVER_OUTSIDE


@dataclass
class Recorder:
    """Every URL a browser context asked for."""

    urls: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        return [
            u
            for u in self.urls
            if urlparse(u).scheme in ("http", "https", "ws", "wss")
            and urlparse(u).hostname != "127.0.0.1"
        ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, with a fresh profile; the tests fail without it."""
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail(
            "chromium is not installed: the browser tests need Debian's chromium "
            "(run `make browser`, or apt-get install chromium chromium-driver)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # A throwaway profile per run; each context below is a fresh, isolated one.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            downloads_path=tempfile.mkdtemp(prefix="ui-test-"),
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[[str], Any]]:
    """A new browser context on the page, recording its requests; none may leave 127.0.0.1."""
    recorders: list[Recorder] = []
    contexts: list[Any] = []

    def open_(url: str) -> Any:
        context = browser.new_context()
        recorder = Recorder()
        context.on("request", lambda request: recorder.urls.append(request.url))
        context.set_default_timeout(WAIT_MS)
        recorders.append(recorder)
        contexts.append(context)
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#login")
        return page

    yield open_
    for context in contexts:
        context.close()
    for recorder in recorders:
        assert recorder.urls, "no request was recorded"
        assert recorder.outside() == [], recorder.outside()


def serve_long_or_short(
    serve: Callable[..., Server], make_settings: Callable[..., Settings]
) -> Server:
    """A page whose model streams :data:`LONG` slowly (20 words a second) when the message
    says "long", else "short answer": for turns that must still run while a test acts."""

    def reply(messages: list[Any]) -> str:
        return LONG if "long" in messages[-1].text else "short answer"

    model = FakeChatModel(reply=reply, delay=0.05)
    return serve(make_settings(generation={"max_new_tokens": 1000}), model)


def sign_in(page: Any, name: str) -> None:
    page.locator("#user-name textarea, #user-name input").first.fill(name)
    page.click("#login")
    page.wait_for_selector(f"#who:has-text('{name}')")


def status_says(page: Any, text: str) -> None:
    """Wait until the status line contains ``text``; a failure shows what it said."""
    expect(page.locator("#status")).to_contain_text(text, timeout=WAIT_MS)


def settle(page: Any, elem_id: str) -> None:
    """Wait until no event that updates component ``elem_id`` is on its way.

    Gradio covers a component while an event that outputs to it runs, and Playwright
    clicks the moment the cover lifts, before the event's update is applied: the update
    then undoes the click (a memory ticked as its list's refresh landed was unticked, and
    "Forget selected" forgot nothing; seen in CI under load). A person cannot click
    through the cover, and the instant it lifts is too short for a hand.
    """
    pending = page.locator(f"#{elem_id} [data-testid=status-tracker]:not(.hide)")
    pending.wait_for(state="detached")


def bot_texts(page: Any) -> list[str]:
    return [
        t.strip() for t in page.locator("#chat .bot:not(.pending)").all_inner_texts() if t.strip()
    ]


def send(page: Any, text: str, *, wait_for: str | None = None, to_the_end: bool = True) -> None:
    page.locator("#message textarea").fill(text)
    page.click("#send")
    if wait_for is not None:
        page.locator("#chat").get_by_text(wait_for, exact=False).first.wait_for()
        if to_the_end:
            # Send is disabled while a turn runs: enabled again, the turn is over.
            page.locator("#send:not([disabled])").wait_for()


def thread_titles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#threads label").all_inner_texts()]


def watch_last_reply(page: Any) -> None:
    """Record every text the last reply shows while it streams (in the page)."""
    page.evaluate(
        """() => {
        window.__replies = [];
        const chat = document.querySelector('#chat');
        new MutationObserver(() => {
            const bots = chat.querySelectorAll('.bot:not(.pending)');
            if (!bots.length) return;
            const text = bots[bots.length - 1].innerText.trim();
            if (text && window.__replies[window.__replies.length - 1] !== text)
                window.__replies.push(text);
        }).observe(chat, {subtree: true, childList: true, characterData: true});
    }"""
    )


def type_into_slider(page: Any, slider: str, value: str, attempts: int = 6) -> None:
    """Type ``value`` into a slider's number box until the slider itself shows it.

    The settings panel renders its content when it opens; on a loaded machine a value
    typed while the slider is still being set up can be lost (seen once in CI, a
    120 s wait for a value that never came). A person would type it again; so does
    this, and the turn then sends what was typed.
    """
    box = page.locator(f"{slider} input[type=number]")
    for _ in range(attempts):
        box.fill(value)
        box.press("Enter")
        try:
            page.wait_for_function(
                "([sel, v]) => document.querySelector(sel)?.value === v",
                arg=[f"{slider} input[type=range]", value],
                timeout=10_000,
            )
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError(f"{slider} never took {value!r} after {attempts} tries")


COUNT_ANIMATIONS = """() => {
    // Every change in the chat: the CSS animations and transitions running then.
    window.__animations = [];
    new MutationObserver(() => {
        for (const running of document.getAnimations()) {
            if (running.playState === 'running') {
                window.__animations.push(running.animationName || running.transitionProperty);
            }
        }
    }).observe(document.querySelector('#chat'), {subtree: true, childList: true,
                                                  characterData: true, attributes: true});
}"""


def test_reply_streams_and_the_sliders_reach_the_model(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
) -> None:
    model = FakeChatModel(reply="one two three four five six seven eight nine ten", delay=0.1)
    server = serve(make_settings(), model)
    page = open_page(server.url)
    sign_in(page, "alice")
    # Diagnostics are folded away until opened.
    assert not page.locator("#diag").is_visible()
    page.click("#settings")
    chosen = (("#temperature", "1.3"), ("#top-p", "0.55"), ("#max-tokens", "7"))
    for slider, value in chosen:
        type_into_slider(page, slider, value)
    page.click("#sampling input")  # sampling off: greedy
    page.click("#safety label:has-text('strict')")
    # Once in CI, on a loaded machine, the turn went with the first slider's default:
    # each is read again, and typed again if it lost its value, as a person would.
    for slider, value in chosen:
        if page.locator(f"{slider} input[type=range]").input_value() != value:
            type_into_slider(page, slider, value)
    watch_last_reply(page)
    page.evaluate(COUNT_ANIMATIONS)
    send(page, "count for me", wait_for="seven")
    page.locator("#threads label:has-text('count for me')").wait_for()
    seen = page.evaluate("window.__replies")
    assert len(seen) > 1, seen  # more than one update before the end
    # Nothing animates while the reply streams in (the CPU is the model's).
    assert page.evaluate("window.__animations") == [], page.evaluate("window.__animations")
    assert seen[-1] == "one two three four five six seven", seen
    kwargs = model.call_kwargs[-1]
    assert kwargs["temperature"] == 1.3
    assert kwargs["top_p"] == 0.55
    assert kwargs["max_new_tokens"] == 7
    assert kwargs["do_sample"] is False
    page.click("#diagnostics")
    # The folded panel's content is only rendered once it is opened.
    page.wait_for_function(
        "(document.querySelector('#diag') || {innerText: ''}).innerText.includes('strict')"
    )
    diag = page.locator("#diag").inner_text()
    assert '"level": "strict"' in diag
    assert '"time_to_first_token_s"' in diag


COUNT_FRAMES = """(() => {
    // Runs before the page's own scripts: counts the frames the browser is asked for.
    window.__frames = 0;
    const ask = window.requestAnimationFrame.bind(window);
    window.requestAnimationFrame = (callback) => { window.__frames++; return ask(callback); };
})();"""


def test_the_idle_page_asks_for_few_animation_frames(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
) -> None:
    """Gradio's timer loops asked for 60 a second (~120 in 2 s) with nothing moving; at
    most 10 a second now, including the loops that took the function before the page's
    own scripts could wrap it."""
    server = serve(make_settings(), FakeChatModel(reply="fine"))
    page = open_page(server.url)
    page.add_init_script(COUNT_FRAMES)
    page.reload()
    page.wait_for_selector("#login")
    sign_in(page, "alice")
    send(page, "hello", wait_for="fine")
    page.wait_for_timeout(500)
    page.evaluate("window.__frames = 0")
    page.wait_for_timeout(2000)
    assert page.evaluate("window.__frames") <= 25
    send(page, "again", wait_for="fine")  # the page still works with fewer frames
    assert bot_texts(page)[-1] == "fine"


def test_threads_switch_reload_and_users_never_see_each_others(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
) -> None:
    model = FakeChatModel(reply=lambda messages: f"About {messages[-1].text.split()[-1]}")
    server = serve(make_settings(), model)
    alice = open_page(server.url)
    sign_in(alice, "alice")
    send(alice, "tell me about apples", wait_for="About apples")
    alice.click("#new-thread")
    alice.wait_for_function("document.querySelectorAll('#chat .bot:not(.pending)').length === 0")
    send(alice, "tell me about bananas", wait_for="About bananas")
    alice.locator("#threads label:has-text('bananas')").wait_for()
    assert sorted(thread_titles(alice)) == ["tell me about apples", "tell me about bananas"]
    alice.click("#threads label:has-text('apples')")
    alice.locator("#chat").get_by_text("About apples", exact=True).wait_for()
    assert "About bananas" not in alice.locator("#chat").inner_text()

    alice.reload()
    alice.wait_for_selector("#who:has-text('alice')")
    alice.locator("#chat").get_by_text("About apples", exact=True).wait_for()
    assert alice.locator("#threads label:has(input:checked)").inner_text().strip() == (
        "tell me about apples"
    )
    assert sorted(thread_titles(alice)) == ["tell me about apples", "tell me about bananas"]

    bob = open_page(server.url)  # another browser context: another person
    assert "alice" not in bob.locator("#who").inner_text()
    sign_in(bob, "bob")
    assert thread_titles(bob) == []
    send(bob, "tell me about cherries", wait_for="About cherries")
    bob.locator("#threads label:has-text('cherries')").wait_for()
    assert thread_titles(bob) == ["tell me about cherries"]

    alice.reload()
    alice.locator("#chat").get_by_text("About apples", exact=True).wait_for()
    assert sorted(thread_titles(alice)) == ["tell me about apples", "tell me about bananas"]
    alice.click("#delete")
    alice.wait_for_function("document.querySelectorAll('#threads label').length === 1")
    assert thread_titles(alice) == ["tell me about bananas"]
    assert thread_titles(bob) == ["tell me about cherries"]


def test_stop_keeps_the_partial_reply_marked_and_the_next_turn_works(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
) -> None:
    server = serve_long_or_short(serve, make_settings)
    page = open_page(server.url)
    sign_in(page, "alice")
    send(page, "a long story please", wait_for="word5", to_the_end=False)
    page.click("#stop")
    page.locator("#chat").get_by_text("[stopped]").wait_for()
    stopped = bot_texts(page)[-1]
    assert stopped.endswith("[stopped]")
    assert "word599" not in stopped
    send(page, "and a short one", wait_for="short answer")
    assert bot_texts(page)[-1] == "short answer"
    # The thread kept the stopped reply: it is there after a reload.
    page.reload()
    page.locator("#chat").get_by_text("short answer").wait_for()
    assert any(t.endswith("[stopped]") for t in bot_texts(page))


def test_an_empty_message_and_a_missing_name_are_messages_in_the_page(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
) -> None:
    model = FakeChatModel(reply="hi")
    server = serve(make_settings(), model)
    page = open_page(server.url)
    send(page, "hello")
    status_says(page, "Enter a user name first")
    sign_in(page, "alice")
    send(page, "   ")
    status_says(page, "The message is empty")
    assert model.calls == []
    assert "Traceback" not in page.content()


def test_upload_a_document_and_get_a_cited_answer_on_smollm2(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    llama_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    tower = tmp_path / "tower.md"
    tower.write_text(
        "# The Glass Tower of Wexmoor\n\nThe Glass Tower of Wexmoor was designed by the "
        "architect Ida Frane. It was finished in 1911 and it is 47 metres tall.\n"
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    server = serve(llama_settings(generation={"max_new_tokens": 32}))
    page = open_page(server.url)
    sign_in(page, "alice")
    page.click("#documents")
    page.locator("#upload input[type=file]").set_input_files([str(tower), str(empty)])
    report = page.locator("#ingest-report")
    report.get_by_text("added").wait_for()
    assert "1 added" in report.inner_text()
    assert "skipped: empty.txt" in report.inner_text().replace("`", "")
    assert [d["name"] for d in server.service.document_list("alice")] == ["tower.md"]
    page.click("#settings")
    page.click("#sampling input")  # greedy
    send(page, "Who designed the Glass Tower of Wexmoor?", wait_for="Source [1]")
    chat = page.locator("#chat")
    assert "frane" in chat.inner_text().lower()
    source = chat.get_by_text("Source [1] tower.md").first
    assert "Ida Frane" not in source.inner_text()
    source.click()  # unfolds the quoted passage
    chat.get_by_text("47 metres tall").first.wait_for()


def test_stop_ends_a_llama_cpp_generation_and_frees_the_model(
    llama_settings: Callable[..., Settings],
) -> None:
    """The real model: Stop unwinds llama.cpp's token loop; the next turn gets the model."""
    from langgraph.checkpoint.memory import InMemorySaver

    from apps.ui.service import Controls, TurnResult
    from tools.memory import OpenMemory
    from tools.memory.locks import LocalThreadLocks

    # The judge (a second model call per message) is not what is tested here.
    settings = llama_settings(generation={"max_new_tokens": 400}, safety={"judge": "off"})
    service = ChatService(settings, OpenMemory(InMemorySaver(), None, LocalThreadLocks()))
    controls = Controls(max_new_tokens=400, do_sample=False)
    tokens: list[str] = []
    results: list[TurnResult] = []
    for item in service.turn(
        "alice", "t1", "Write a long story about a dragon.", controls, session="tab"
    ):
        if isinstance(item, TurnResult):
            results.append(item)
        else:
            tokens.append(item)
            if len(tokens) == 5:
                service.stop("tab")
    (stopped,) = results
    assert stopped.stopped and stopped.reply.endswith("[stopped]")
    assert len(tokens) < 20  # ended at the next token or so, not after 400
    short = Controls(max_new_tokens=16, do_sample=False)
    *_, again = service.turn("alice", "t1", "What is 2+2?", short)
    assert isinstance(again, TurnResult)
    assert again.reply and not again.stopped


class GatedEmbeddings(Embeddings):
    """Word-hash vectors that embed documents only once the test opens the gate.

    The upload's progress shows while the ingest waits here, so the test sees it whatever
    the machine's speed (and without a timed wait).
    """

    def __init__(self) -> None:
        self.gate = threading.Event()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.gate.wait(WAIT_MS / 1000)  # a bound for a broken test, not a timing
        return word_vectors(texts)

    def embed_query(self, text: str) -> list[float]:
        return word_vectors([text])[0]


def upload(page: Any, *files: Path) -> None:
    page.click("#documents")
    page.locator("#upload input[type=file]").set_input_files([str(f) for f in files])


def settled(page: Any, selector: str) -> None:
    """Wait until no event is updating the component (its progress overlay takes clicks)."""
    page.locator(f"{selector} [data-testid=status-tracker]:not(.hide)").wait_for(state="hidden")


def listed_files(page: Any, expect: str | None = None) -> list[str]:
    """The file list's entries (the dropdown opened, read and closed again).

    Args:
        page: The page.
        expect: An entry to wait for first (the list is refreshed by its own event).
    """
    box = page.locator("#docs input")
    settled(page, "#docs")
    box.click()
    page.locator("#docs ul[role=listbox]").wait_for(state="attached")
    if expect is not None:
        page.locator(f"#docs [data-testid=dropdown-option][aria-label='{expect}']").wait_for()
    names: list[str] = page.locator("#docs [data-testid=dropdown-option]").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    )
    box.press("Escape")
    box.blur()
    return names


def test_upload_shows_progress_then_what_was_added_skipped_and_failed(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.md"
    good.write_text("# Notes\n\nThe harbour crane lifts forty tonnes.\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n" + b"\x07garbage" * 50)
    embeddings = GatedEmbeddings()
    server = serve(make_settings(), FakeChatModel(reply="ok"), embeddings)
    page = open_page(server.url)
    sign_in(page, "alice")
    upload(page, good, empty, broken)
    try:
        # The ingest waits at the gate with good.md as the current file: its progress shows.
        page.get_by_text("good.md · 0 chunks").first.wait_for()
    finally:
        embeddings.gate.set()
    report = page.locator("#ingest-report")
    report.get_by_text("added").wait_for()
    text = report.inner_text().replace("`", "")
    assert "1 added" in text
    assert "1 skipped, 1 failed" in text
    assert "skipped: empty.txt: " in text
    assert "failed: broken.pdf: corrupt PDF" in text
    assert listed_files(page, expect="good.md (1 chunks)") == ["good.md (1 chunks)"]


def test_each_user_lists_and_is_answered_from_their_own_documents(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    tower = tmp_path / "tower.md"
    tower.write_text(
        "# The Glass Tower of Wexmoor\n\nThe Glass Tower of Wexmoor was designed by the "
        "architect Ida Frane. It was finished in 1911.\n"
    )
    mill = tmp_path / "mill.md"
    mill.write_text("# The Old Mill\n\nThe old mill of Brantham grinds barley every Tuesday.\n")
    question = "Who designed the Glass Tower of Wexmoor?"
    # The real embedding model, as retrieval searches with.
    server = serve(make_settings(), FakeChatModel(reply="Here is what I know."))
    alice = open_page(server.url)
    sign_in(alice, "alice")
    upload(alice, tower)
    alice.locator("#ingest-report").get_by_text("1 added").wait_for()
    assert listed_files(alice) == ["tower.md (1 chunks)"]

    bob = open_page(server.url)  # another browser context: another person
    sign_in(bob, "bob")
    upload(bob, mill)  # a list of his own, so an empty one is not just "not loaded yet"
    bob.locator("#ingest-report").get_by_text("1 added").wait_for()
    assert listed_files(bob) == ["mill.md (1 chunks)"]
    send(bob, question, wait_for="Here is what I know.")
    assert "Source [" not in bob.locator("#chat").inner_text()
    assert [d["name"] for d in server.service.document_list("bob")] == ["mill.md"]

    send(alice, question, wait_for="Source [1] tower.md")
    assert "Here is what I know." in alice.locator("#chat").inner_text()
    # Each page lists its own user's files after a reload too.
    for page, name, mine in (
        (bob, "bob", "mill.md (1 chunks)"),
        (alice, "alice", "tower.md (1 chunks)"),
    ):
        page.reload()
        page.wait_for_selector(f"#who:has-text('{name}')")
        page.click("#documents")
        assert listed_files(page, expect=mine) == [mine]
    # Alice removes hers; Bob's stays.
    settled(alice, "#docs")
    alice.locator("#docs input").click()
    alice.locator("#docs [data-testid=dropdown-option][aria-label='tower.md (1 chunks)']").click()
    alice.click("#remove-doc")
    status_says(alice, "Removed tower.md (1 chunks).")
    assert listed_files(alice) == []
    assert [d["name"] for d in server.service.document_list("bob")] == ["mill.md"]


def test_a_second_turn_on_a_running_thread_says_it_is_busy(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
) -> None:
    server = serve_long_or_short(serve, make_settings)
    first = open_page(server.url)
    sign_in(first, "alice")
    # A second tab of the same browser opens on the same user and thread.
    second = first.context.new_page()
    second.goto(server.url)
    second.wait_for_selector("#who:has-text('alice')")
    send(first, "a long story please", wait_for="word3", to_the_end=False)
    send(second, "a quick question")
    status_says(second, "This thread is busy")
    # Not sent: the message is back in the box, and not in the chat.
    assert second.locator("#message textarea").input_value() == "a quick question"
    assert "a quick question" not in second.locator("#chat").inner_text()
    first.click("#stop")
    first.locator("#chat").get_by_text("[stopped]").wait_for()
    first.locator("#send:not([disabled])").wait_for()
    send(second, "a quick question", wait_for="short answer")
    assert "busy" not in second.locator("#status").inner_text()


def test_a_memory_list_that_cannot_be_read_says_why_on_the_page(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sqlite3

    server = serve(make_settings(), FakeChatModel(reply="ok"))
    store = server.service.memory.store
    assert store is not None
    remember_turn(
        store, "alice", message="I live in Lyon.", reply="ok", thread_id=None, message_id=None
    )
    page = open_page(server.url)
    sign_in(page, "alice")
    page.click("#memory")
    memories = page.locator("#memories")
    memories.get_by_text("[facts] I live in Lyon.").wait_for()

    def gone(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "batch", gone)
    monkeypatch.setattr(store, "search", gone)
    header = page.locator("#memory").get_by_text("Long-term memory")
    header.click()  # closed
    header.click()  # opened again: the list is read again
    status_says(page, "database is locked")
    memories.get_by_text("Not shown: The memory store is unavailable").wait_for()
    assert "Lyon" not in memories.inner_text()
    monkeypatch.undo()
    header.click()
    header.click()
    memories.get_by_text("[facts] I live in Lyon.").wait_for()
    memories.get_by_text("Not shown").wait_for(state="detached")


def test_forget_selected_removes_a_memory(
    serve: Callable[..., Server],
    open_page: Callable[[str], Any],
    make_settings: Callable[..., Settings],
) -> None:
    server = serve(make_settings(), FakeChatModel(reply="ok"))
    store = server.service.memory.store
    assert store is not None
    remember_turn(
        store,
        "alice",
        message="My name is Alice. I live in Lyon.",
        reply="Nice to meet you.",
        thread_id=None,
        message_id=None,
        turns=False,
    )
    remember_turn(
        store, "bob", message="I live in Oslo.", reply="ok", thread_id=None, message_id=None
    )
    page = open_page(server.url)
    sign_in(page, "alice")
    page.click("#memory")
    memories = page.locator("#memories")
    memories.get_by_text("I live in Lyon.").wait_for()
    # Signing in and opening the panel each list the memories; either may land last.
    settle(page, "memories")
    assert "Oslo" not in memories.inner_text()
    memories.locator("label:has-text('I live in Lyon.') input").check()
    page.click("#forget")
    status_says(page, "Forgot 1 memory.")
    memories.get_by_text("I live in Lyon.").wait_for(state="detached")
    assert "My name is Alice." in memories.inner_text()
    assert [m.text for m in server.service.memories("alice")] == ["My name is Alice."]
    assert [m.text for m in server.service.memories("bob") if m.kind == "facts"] == [
        "I live in Oslo."
    ]
