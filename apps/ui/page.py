"""The chat page: a Gradio Blocks app over :class:`apps.ui.service.ChatService`.

Offline by construction: analytics off (before gradio is imported, and on the Blocks), a
theme with system fonts only (Gradio's default loads Google Fonts), no share link, no
server-side rendering (it would start Node), no MCP server. Everything per browser session
is an input of each event (the user, the open thread, the sliders) or lives in the
browser (``gr.BrowserState``), so sessions never share a setting.
"""

from __future__ import annotations

import os

# Read when gradio is imported: no analytics, no version check, no telemetry.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import functools
import html
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import gradio as gr
from starlette.middleware import Middleware

from apps.ui.service import (
    NO_MEMORIES,
    NO_THREADS,
    UPLOAD_KINDS,
    ChatService,
    Controls,
    TurnResult,
    UiError,
    as_text,
    check_message,
    ingest_summary,
    safety_levels,
)
from tools.documents.retrieval import cite

log = logging.getLogger("assistant.ui")

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]

Rows = list[dict[str, Any]]
PROGRESS = gr.Progress()
"""Gradio injects a live tracker where an event function's default is a ``gr.Progress``."""


def theme() -> gr.themes.Base:
    """Gradio's default look with system fonts (its own fonts come from Google)."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def new_thread_id() -> str:
    """A fresh thread id (a UUID, like the CLI's)."""
    return str(uuid.uuid4())


def quoted(text: str) -> str:
    """A passage as a Markdown quote: its own headings and lists shown as plain lines."""
    lines = [
        re.sub(r"^(\s*)(\d+)\.", r"\1\2\\.", re.sub(r"^(\s*)([#>*+-])", r"\1\\\2", line))
        for line in text.strip().splitlines()
    ]
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines)


def source_rows(sources: list[dict[str, Any]]) -> Rows:
    """The reply's sources as folded chat rows: the citation as title, the passage inside."""
    return [
        {
            "role": "assistant",
            "content": quoted(str(p.get("text", ""))),
            "metadata": {"title": f"Source [{n}] {as_text(cite(p))}", "status": "done"},
        }
        for n, p in enumerate(sources, 1)
    ]


STREAM_GAP_S = 0.066
"""Shortest time between two page updates of a streaming reply (about 15 a second)."""


def paced(
    items: Iterable[str | TurnResult],
    gap: float = STREAM_GAP_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str | TurnResult]:
    """A turn's stream as the reply so far, at most once per ``gap`` seconds, then its result.

    Each page update costs the browser a render; a token each is CPU taken from the model
    on a small machine. The first visible text goes out at once (time to first token);
    text that comes sooner than ``gap`` after the last update waits for a later chunk or
    for the result, which carries the whole reply.

    Args:
        items: The turn's chunks of reply text, ending with its :class:`TurnResult`.
        gap: Seconds between two updates, at least.
        clock: Seconds, monotonic (tests pass their own).

    Yields:
        The whole reply so far (str), and the :class:`TurnResult` as it comes.
    """
    reply, shown, last = "", "", 0.0
    for item in items:
        if isinstance(item, TurnResult):
            yield item
            continue
        reply += item
        now = clock()
        if reply != shown and (not shown.strip() or now - last >= gap):
            shown, last = reply, now
            yield reply


def diagnostics_markdown(diag: dict[str, Any]) -> str:
    """The diagnostics panel's text (a JSON block)."""
    return "```json\n" + json.dumps(diag, indent=2, default=str) + "\n```"


def thread_choices(service: ChatService, user: str | None) -> list[tuple[str, str]]:
    """(title, thread id) for the thread list; empty without a user or when none are kept.

    With ``memory.backend = none`` the list is empty, not an error: the page says so once
    at sign-in, and a turn's reply must not be taken back because its list was empty.
    """
    if not user or not service.keeps_threads:
        return []
    return [(f"{t.title}", t.thread_id) for t in service.threads(user)]


def refreshed_threads(service: ChatService, user: str, thread_id: str) -> tuple[Any, str]:
    """The thread list's update after a turn, and what went wrong ("" when nothing did).

    The reply is saved by then: a list that cannot be read (the store went away after the
    turn) must not take it off the page, so the list stays as it was and the status says
    why. Without kept threads the list is empty and selects nothing.
    """
    try:
        choices = thread_choices(service, user)
    except Exception as exc:  # the reply is kept whatever the list's failure
        if not isinstance(exc, UiError):
            log.exception("thread list failed after a turn")
        return gr.skip(), f"The reply is saved; the thread list was not refreshed: {exc}"
    ids = {value for _, value in choices}
    return gr.update(choices=choices, value=thread_id if thread_id in ids else None), ""


def memory_choices(service: ChatService, user: str | None) -> list[tuple[str, str]]:
    """(text, key) of the user's memories for the forget list."""
    if not user:
        return []
    return [(f"[{m.kind}] {m.text}", m.key) for m in service.memories(user)]


def memory_list(
    service: ChatService, user: str | None, ticked: Iterable[str] = ()
) -> tuple[Any, str]:
    """The forget list's update, and why it could not be read ("" when it could).

    ``ticked`` (keys) stay ticked where they are still listed: a refresh of the same
    user's list (opening the panel) that arrives after a tick must not untick it, or
    "Forget selected" forgets nothing. A list that cannot be read is not an empty one: it
    is emptied (what it showed may be another user's) and says why under its label, and
    the caller shows the reason in the status line as every other store failure is.
    """
    # "" clears what the list said before (None would leave it: Gradio skips None).
    info = "" if service.keeps_memories else NO_MEMORIES
    try:
        choices = memory_choices(service, user)
        keys = {key for _, key in choices}
        value = [key for key in ticked if key in keys]
        return gr.update(choices=choices, value=value, info=info), ""
    except UiError as exc:
        return gr.update(choices=[], value=[], info=f"Not shown: {exc}"), str(exc)


def with_notices(shown: str | None, notices: Iterable[str]) -> Any:
    """The status line as it is (``shown``) with ``notices`` (HTML; "": none) added.

    Returns:
        ``gr.skip()`` when there is nothing new to say, so a word already there stays.
    """
    current = shown or ""
    added = [n for n in notices if n and n not in current]
    return current + "".join(dict.fromkeys(added)) if added else gr.skip()


def document_choices(service: ChatService, user: str | None) -> list[tuple[str, str]]:
    """(name and chunks, key) of the files in the user's collection; empty without a user.

    The key, not the file's path: the browser learns nothing of the server's folders. In
    the shared collection each also says who added it, which tells two users' files of one
    name apart (and whose file only they may remove).
    """
    if not user:
        return []
    return [
        (
            f"{d['name']} ({d['chunks']} chunks"
            + (f", added by {d['added_by']})" if service.shared_documents else ")"),
            d["key"],
        )
        for d in service.document_list(user)
    ]


def saved_session(state: Any) -> tuple[str, str]:
    """The user and thread the browser kept (``gr.BrowserState``), as two strings.

    The browser's storage is the user's to edit: anything but a mapping of strings
    counts as nothing saved, and the names are checked when the thread opens.
    """
    if not isinstance(state, dict):
        return "", ""
    user, thread_id = state.get("user"), state.get("thread")
    return (
        user if isinstance(user, str) else "",
        thread_id if isinstance(thread_id, str) else "",
    )


GONE = "That thread is gone (deleted in another tab?); a new thread is open."


def _notice(text: str) -> str:
    return f'<div class="notice">{html.escape(text)}</div>' if text else ""


def build_ui(service: ChatService) -> gr.Blocks:
    """The chat page.

    Args:
        service: The back end every browser session shares.

    Returns:
        The Blocks app (launch it with :func:`launch_options`).
    """
    defaults = Controls.from_settings(service.settings)
    with gr.Blocks(title="Local assistant", analytics_enabled=False) as page:
        saved = gr.BrowserState({"user": "", "thread": ""}, storage_key="assistant-ui")
        user_state = gr.State("")
        thread_state = gr.State("")

        gr.Markdown("## Local assistant")
        with gr.Row():
            user_box = gr.Textbox(
                label="User name", placeholder="your name", scale=3, elem_id="user-name"
            )
            login = gr.Button("Use this name", scale=1, elem_id="login")
            who = gr.Markdown("Not signed in.", elem_id="who")
        status = gr.HTML("", elem_id="status")
        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                new_thread = gr.Button("New thread", elem_id="new-thread")
                threads = gr.Radio(choices=[], label="Threads", elem_id="threads", interactive=True)
                delete_thread = gr.Button("Delete thread", variant="stop", elem_id="delete")
            with gr.Column(scale=4):
                chat = gr.Chatbot(label="Chat", height=460, elem_id="chat", buttons=["copy"])
                with gr.Row():
                    message = gr.Textbox(
                        label="Message",
                        placeholder="Ask something…",
                        scale=5,
                        elem_id="message",
                        max_lines=8,
                    )
                    send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                    stop = gr.Button("Stop", scale=1, elem_id="stop")
                with gr.Accordion("Generation settings", open=False, elem_id="settings"):
                    temperature = gr.Slider(
                        0.0, 2.0, value=defaults.temperature, step=0.05,
                        label="Temperature", elem_id="temperature",
                    )  # fmt: skip
                    top_p = gr.Slider(
                        0.05, 1.0, value=defaults.top_p, step=0.05, label="Top p", elem_id="top-p"
                    )
                    max_tokens = gr.Slider(
                        1, 1024, value=defaults.max_new_tokens, step=1,
                        label="Max new tokens", elem_id="max-tokens",
                    )  # fmt: skip
                    sampling = gr.Checkbox(
                        value=defaults.do_sample,
                        label="Sampling (off = greedy)",
                        elem_id="sampling",
                    )
                    safety = gr.Radio(
                        list(safety_levels()), value=defaults.safety_level,
                        label="Safety level", elem_id="safety",
                    )  # fmt: skip
                with gr.Accordion("Diagnostics", open=False, elem_id="diagnostics"):
                    diag = gr.Markdown("No turn yet.", elem_id="diag")
                with gr.Accordion("Documents", open=False, elem_id="documents"):
                    upload = gr.File(
                        label="Upload PDF, Markdown, text or HTML",
                        file_count="multiple",
                        file_types=list(UPLOAD_KINDS),
                        elem_id="upload",
                    )
                    ingest_report = gr.Markdown("", elem_id="ingest-report")
                    docs = gr.Dropdown(
                        choices=[],
                        label="Files everyone shares" if service.shared_documents else "Your files",
                        elem_id="docs",
                    )
                    remove_doc = gr.Button("Remove file", elem_id="remove-doc")
                with gr.Accordion("Long-term memory", open=False, elem_id="memory") as memory_panel:
                    memories = gr.CheckboxGroup(
                        choices=[],
                        label="What is remembered about you",
                        info=None if service.keeps_memories else NO_MEMORIES,
                        elem_id="memories",
                    )
                    forget = gr.Button("Forget selected", elem_id="forget")

        controls = [temperature, top_p, max_tokens, sampling, safety]

        # --- sign in, threads --------------------------------------------------------------

        def sign_in(name: str, state: dict[str, str]) -> tuple[Any, ...]:
            try:
                user = service.check_user(name)
            except UiError as exc:
                return _only_status(len(opened), str(exc))
            return _open_thread(user, "", state)

        def _open_thread(user: str, thread_id: str, state: dict[str, str]) -> tuple[Any, ...]:
            """Outputs: user, thread, browser state, who, threads, chat, status.

            The user is checked here, whoever calls: the browser's saved state is only
            what the browser sends back (edited, or saved before a name rule changed),
            and a name the service refuses must not become the session's user.
            """
            try:
                user = service.check_user(user)
            except UiError as exc:
                return (
                    "",
                    "",
                    {"user": "", "thread": ""},
                    "Not signed in.",
                    gr.update(choices=[], value=None),
                    [],
                    _notice(str(exc)),
                )
            notices: list[str] = [] if service.keeps_threads else [NO_THREADS]
            rows: Rows = []
            choices: list[tuple[str, str]] = []
            # Each on its own: a thread that cannot be opened (another user's) still
            # leaves the user's own threads listed, and the other way round.
            try:
                if thread_id:
                    rows, values = service.history(user, thread_id)
                    rows += source_rows(list(values.get("sources") or []))
            except UiError as exc:
                thread_id, rows = "", []
                notices.append(str(exc))
            try:
                choices = thread_choices(service, user)
            except UiError as exc:
                if str(exc) not in notices:
                    notices.append(str(exc))
            notice = " ".join(notices)
            if not thread_id:
                thread_id = new_thread_id()
            state = {"user": user, "thread": thread_id}
            known = {c[1] for c in choices}
            return (
                user,
                thread_id,
                state,
                f"Signed in as **{html.escape(user)}**",
                gr.update(choices=choices, value=thread_id if thread_id in known else None),
                rows,
                _notice(notice),
            )

        opened = [user_state, thread_state, saved, who, threads, chat, status]
        login.click(guarded(sign_in, len(opened)), [user_box, saved], opened)
        user_box.submit(guarded(sign_in, len(opened)), [user_box, saved], opened)

        def restore(state: Any) -> tuple[Any, ...]:
            user, thread_id = saved_session(state)
            if not user:
                # Nothing saved: leave the page as it is (the name box may be typed in already).
                return tuple(gr.skip() for _ in range(len(opened) + 1))
            return (*_open_thread(user, thread_id, {}), user)

        page.load(guarded(restore, len(opened) + 1, len(opened) - 1), [saved], [*opened, user_box])

        def pick_thread(thread_id: str | None, user: str, state: dict[str, str]) -> tuple[Any, ...]:
            if not user or not thread_id:
                return tuple(gr.skip() for _ in opened)
            try:
                gone = service.owner_of(thread_id) is None
            except UiError:
                gone = False  # no threads kept: _open_thread says so
            if gone:
                # Listed in this tab, deleted in another since: a new thread, and a word why.
                fresh = _open_thread(user, "", state)
                return (*fresh[:-1], fresh[-1] or _notice(GONE))
            return _open_thread(user, thread_id, state)

        threads.input(guarded(pick_thread, len(opened)), [threads, user_state, saved], opened)

        def start_new(user: str, state: dict[str, str]) -> tuple[Any, ...]:
            if not user:
                return _only_status(len(opened), "Enter a user name first.")
            return _open_thread(user, "", state)

        new_thread.click(guarded(start_new, len(opened)), [user_state, saved], opened)

        def drop_thread(user: str, thread_id: str, state: dict[str, str]) -> tuple[Any, ...]:
            try:
                service.delete_thread(user, thread_id)
            except UiError as exc:
                return _only_status(len(opened), str(exc))
            return _open_thread(user, "", state)

        delete_thread.click(
            guarded(drop_thread, len(opened)), [user_state, thread_state, saved], opened
        )

        # --- a turn -------------------------------------------------------------------------

        def respond(
            text: str,
            rows: Rows | None,
            user: str,
            thread_id: str,
            temp: float,
            p: float,
            tokens: float,
            sample: bool,
            level: str,
            request: gr.Request,
        ) -> Iterator[tuple[Any, ...]]:
            """Outputs: chat, message box, status, diagnostics, threads, send button.

            Send is disabled while the turn runs (Stop is not), and enabled again however
            the turn ends.
            """
            rows = [r for r in (rows or []) if not (r.get("metadata") or {}).get("title")]
            # As the browser sent them (a cleared number box sends None): make_context
            # checks each and says which is wrong.
            knobs = Controls(temp, p, tokens, sample, level)  # type: ignore[arg-type]
            session = getattr(request, "session_hash", None) or ""
            skip = gr.skip()
            try:
                # The checks, then the model starts reading the prompt while the page shows
                # the message: a refused message never shows as sent.
                items = service.turn(user, thread_id, text, knobs, session=session)
            except UiError as exc:
                yield skip, skip, _notice(str(exc)), skip, skip, skip
                return
            except Exception as exc:  # never a traceback in the page, as during the turn
                log.exception("turn failed to start")
                yield skip, skip, _notice(f"The turn failed: {exc}"), skip, skip, skip
                return
            asked = [*rows, {"role": "user", "content": check_message(text)}]
            busy, ready = gr.update(interactive=False), gr.update(interactive=True)
            try:
                yield asked, "", "", skip, skip, busy  # the message shows at once
                for item in paced(items):
                    if isinstance(item, TurnResult):
                        final = [*asked, {"role": "assistant", "content": item.reply}]
                        final += source_rows(item.sources)
                        note = "Stopped." if item.stopped else ""
                        if item.withdrawn:
                            note = "The streamed reply was withdrawn by the safety filter."
                        listed, failed = refreshed_threads(service, user, thread_id)
                        yield (
                            final,
                            skip,
                            _notice(" ".join(n for n in (note, failed) if n)),
                            diagnostics_markdown(item.diagnostics),
                            listed,
                            ready,
                        )
                        return
                    yield [*asked, {"role": "assistant", "content": item}], *(skip,) * 5
            except UiError as exc:
                # Not answered (busy thread, over the budget, no model): the message goes
                # back into the box, and out of the chat.
                yield rows, text, _notice(str(exc)), skip, skip, ready
            except Exception as exc:  # never a traceback in the page
                log.exception("turn failed")
                yield rows, text, _notice(f"The turn failed: {exc}"), skip, skip, ready
            finally:
                items.close()  # the page went away mid-turn: stop the model

        turn_outputs = [chat, message, status, diag, threads, send]
        turn_inputs = [message, chat, user_state, thread_state, *controls]
        # Progress as a timer on the chat alone: Gradio's default animates a spinner and a
        # timer over all six outputs, which kept headless chromium at about twice its idle
        # CPU while the model read the prompt, on the same 2 cores (measured: 0.40-1.05 s
        # of CPU in 3.5 s of waiting, against 0.22-0.32 s like this).
        progress: dict[str, Any] = {"show_progress": "minimal", "show_progress_on": [chat]}
        send.click(respond, turn_inputs, turn_outputs, concurrency_limit=8, **progress)
        message.submit(respond, turn_inputs, turn_outputs, concurrency_limit=8, **progress)

        def halt(request: gr.Request) -> None:
            service.stop(getattr(request, "session_hash", None) or "")

        # Not queued: it must run while the turn's generator holds the queue's slot. It sets
        # the stop signal of each turn running in this session (no other session's, and
        # none of a request without a session id); the model call ends at its next token
        # and the turn yields its partial reply marked as stopped (Gradio's ``cancels``
        # would drop that last update and leave llama.cpp decoding in its worker thread).
        stop.click(halt, None, None, queue=False)

        # --- documents ----------------------------------------------------------------------

        def refresh_docs(user: str) -> tuple[Any, str]:
            """The file list's update, and the notice of why it could not be read ("": none).

            Like the memory list, a list that cannot be read says so (:func:`memory_list`).
            """
            try:
                listed = document_choices(service, user)
                return gr.update(choices=listed, value=None, info=""), ""
            except UiError as exc:
                return gr.update(choices=[], value=None, info=f"Not shown: {exc}"), _notice(
                    str(exc)
                )

        def do_upload(
            files: list[str] | None, user: str, progress: gr.Progress = PROGRESS
        ) -> tuple[Any, ...]:
            if not files:
                return gr.skip(), gr.skip(), gr.skip()
            if not user:
                return gr.skip(), gr.skip(), _notice("Enter a user name first.")

            def show(step: Any) -> None:
                total = max(step.files_total, 1)
                name = os.path.basename(step.current) if step.current else "done"
                progress(step.files_done / total, desc=f"{name} · {step.chunks_done} chunks")

            try:
                report = service.ingest(user, files, show)
            except UiError as exc:
                return _notice(str(exc)), gr.skip(), gr.skip()
            choices, notice = refresh_docs(user)
            return ingest_summary(report), choices, notice

        upload.upload(guarded(do_upload, 3), [upload, user_state], [ingest_report, docs, status])

        def do_remove(key: str | None, user: str) -> tuple[Any, ...]:
            if not user:
                return _notice("Enter a user name first."), gr.skip()
            if not key:
                return _notice("Choose a file to remove."), gr.skip()
            try:
                name, removed = service.remove_listed(user, key)
            except UiError as exc:
                return _notice(str(exc)), gr.skip()
            choices, notice = refresh_docs(user)
            return notice or _notice(f"Removed {name} ({removed} chunks)."), choices

        remove_doc.click(guarded(do_remove, 2, 0), [docs, user_state], [status, docs])

        # --- long-term memory ---------------------------------------------------------------

        def show_memories(user: str, ticked: list[str] | None) -> tuple[Any, Any]:
            """Outputs: the memory list, the status line (only to say it failed)."""
            listed, problem = memory_list(service, user, ticked or ())
            return listed, _notice(problem) if problem else gr.skip()

        def do_forget(user: str, keys: list[str] | None) -> tuple[Any, str]:
            if not keys:
                return gr.skip(), _notice("Tick what to forget first.")
            try:
                count = service.forget(user, keys)
            except UiError as exc:
                return gr.skip(), _notice(str(exc))
            listed, problem = memory_list(service, user)
            return listed, _notice(forgot(count)) + _notice(problem)

        forget.click(guarded(do_forget, 2), [user_state, memories], [memories, status])
        memory_panel.expand(guarded(show_memories, 2), [user_state, memories], [memories, status])

        # Each user sees their own files and memories: the lists follow the signed-in user.
        # One event for both, so the two cannot overwrite each other's word in the status
        # line, which keeps what the sign-in said there.
        def list_for_user(
            user: str, shown: str | None, ticked: list[str] | None = None
        ) -> tuple[Any, Any, Any]:
            """Outputs: the file list, the memory list, the status line.

            Ticks stay only on memories of this user's list (another user's keys are
            never in it).
            """
            files, file_problem = refresh_docs(user)
            listed, problem = memory_list(service, user, ticked or ())
            return files, listed, with_notices(shown, [file_problem, _notice(problem)])

        user_state.change(
            guarded(list_for_user, 3), [user_state, status, memories], [docs, memories, status]
        )
    return cast(gr.Blocks, page)


def guarded(event: Callable[..., Any], outputs: int, status: int | None = -1) -> Callable[..., Any]:
    """An event function that shows what it did not expect as a message, not an error box.

    The service turns what it knows into :class:`UiError` messages; anything else (a bug,
    a library's own exception) used to reach Gradio, which shows a bare "Error" and
    leaves the page half updated. It is logged with its traceback for the operator; the
    page keeps every output as it was and says in the status line what failed. Gradio
    reads the wrapped function's signature (``gr.Request``, ``gr.Progress``) through
    ``functools.wraps``.

    Args:
        event: The event function (not a generator: a turn handles its own).
        outputs: How many outputs the event has.
        status: Which of them is the status line (None: it has none; only logged).
    """

    @functools.wraps(event)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return event(*args, **kwargs)
        except Exception as exc:
            log.exception("page event %s failed", event.__name__)
            skipped = [gr.skip() for _ in range(outputs)]
            if status is not None:
                skipped[status] = _notice(f"Something went wrong ({type(exc).__name__}): {exc}")
            return skipped[0] if outputs == 1 else tuple(skipped)

    return run


def forgot(count: int) -> str:
    """What the page says after forgetting ``count`` memories."""
    if count == 0:
        return "Nothing was forgotten: already gone (forgotten in another tab?)."
    return f"Forgot {count} memor{'y' if count == 1 else 'ies'}."


def _only_status(outputs: int, text: str) -> tuple[Any, ...]:
    """Leave every output as it is but the last (the status line), which says ``text``."""
    return (*(gr.skip() for _ in range(outputs - 1)), _notice(text))


CSS = (
    ".notice { padding: .5em 1em; border-left: 4px solid #d97706; background: #fef3c7; }\n"
    # Nothing on the page moves by itself: Gradio's pulsing borders, spinners and pending
    # dots are CSS animations that the browser draws all through a turn, on the cores the
    # model needs (headless chromium, 2 cores, the default model: 0.46 s of CPU per short
    # turn with them, 0.30 s without; scripts/ui_cpu.py measures it on the fake model).
    # The timer and the streamed text still show that a turn runs.
    "*, *::before, *::after { animation: none !important; transition: none !important; }"
)

FRAME_GAP_MS = 100
"""Shortest time between two animation frames the page is given (10 a second)."""

FRAME_SCRIPT = f"""<script>
// Gradio's status trackers and Svelte's animation loop ask for a frame up to 60 times a
// second, also while nothing visible moves (a tracker unmounted while pending keeps its
// timer loop: 8-10 % of a core in chromium, taken from the model on a small machine).
// Frames are handed out at most every {FRAME_GAP_MS} ms, all callbacks waiting then in one.
// It must run before Gradio's modules, which keep their own reference to the function.
(() => {{
  const gap = {FRAME_GAP_MS};
  const nativeFrame = window.requestAnimationFrame.bind(window);
  let waiting = new Map(), nextId = 1, timer = null, last = -gap;
  const run = (time) => {{
    last = performance.now();
    const due = waiting;
    waiting = new Map();
    due.forEach((callback) => {{
      try {{ callback(time); }} catch (error) {{ setTimeout(() => {{ throw error; }}); }}
    }});
  }};
  window.requestAnimationFrame = (callback) => {{
    const id = nextId++;
    waiting.set(id, callback);
    if (timer === null) {{
      const wait = Math.max(0, gap - (performance.now() - last));
      timer = setTimeout(() => {{ timer = null; nativeFrame(run); }}, wait);
    }}
    return id;
  }};
  window.cancelAnimationFrame = (id) => {{ waiting.delete(id); }};
}})();
</script>"""


class FirstInHead:
    """ASGI middleware: :data:`FRAME_SCRIPT` first in the ``<head>`` of the page at ``/``.

    Gradio's own ``head`` is added by its scripts once they run, too late for this one.
    """

    def __init__(self, app: Any, script: str = FRAME_SCRIPT) -> None:
        self.app = app
        self.script = script.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; a GET of ``/`` answered with HTML gets the script."""
        # The page itself only: an uploaded HTML file served back stays as it was.
        if scope["type"] != "http" or scope.get("method") != "GET" or scope["path"] != "/":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def edit(message: Any) -> None:
            if message["type"] == "http.response.start":
                kinds = [v for k, v in message.get("headers", []) if k.lower() == b"content-type"]
                if not kinds or not kinds[0].startswith(b"text/html"):
                    await send(message)  # not a page: passed on untouched
                    return
                start.update(message)
                return
            if not start or message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            page = bytes(body).replace(b"<head>", b"<head>" + self.script, 1)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, edit)


def launch_options(host: str, port: int) -> dict[str, Any]:
    """``Blocks.launch`` arguments: local only, nothing shared, nothing phoned home."""
    return {
        "server_name": host,
        "server_port": port,
        "share": False,
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "show_error": False,
        "inbrowser": False,
        "footer_links": [],
        "max_file_size": "200mb",
        "theme": theme(),
        "css": CSS,
        # Not ``head``: Gradio adds that from its scripts, after they took requestAnimationFrame.
        "app_kwargs": {"middleware": [Middleware(FirstInHead)]},
    }


QUEUE_POLL_S = 0.005
"""How often Gradio's queue looks for a new event to start, in seconds (Gradio: 0.001)."""
PROGRESS_POLL_S = 0.05
"""How often it looks for a progress update to send, in seconds (Gradio: 0.01)."""


def queued(page: gr.Blocks, concurrency: int = 8) -> gr.Blocks:
    """``page.queue()``, with the queue's polling slowed to :data:`QUEUE_POLL_S`.

    Gradio's queue is a loop on the server's event loop that wakes every millisecond, busy
    or idle, to look for an event to start (and every 10 ms for progress to send): about
    5 % of a core here (measured, 2026-12-01: 0.063-0.073 s of CPU in each 1.35 s prompt
    evaluation), and a thousand wake-ups a second that each take a core from one of
    llama.cpp's two threads while the other waits for it at the next barrier. Every 5 ms
    costs a click at most 5 ms more before its turn starts; the queue has no public
    setting for it (the attributes are read on each pass; a Gradio without them keeps its
    own).

    Args:
        page: The page (:func:`build_ui`).
        concurrency: Events of one kind that may run at once (``default_concurrency_limit``).

    Returns:
        The same page, queued.
    """
    page.queue(default_concurrency_limit=concurrency)
    queue = getattr(page, "_queue", None)
    for name, seconds in (
        ("sleep_when_free", QUEUE_POLL_S),
        ("progress_update_sleep_when_free", PROGRESS_POLL_S),
    ):
        if isinstance(getattr(queue, name, None), float):
            setattr(queue, name, seconds)
        else:  # another Gradio: its own polling, which only costs CPU
            log.debug("gradio's queue has no %s; its polling is left as it is", name)
    return page


def serve(service: ChatService, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page until interrupted (``assistant ui``)."""
    queued(build_ui(service)).launch(**launch_options(host, port))
