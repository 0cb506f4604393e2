"""The chat page's event functions (apps/ui/page.py), called as Gradio calls them.

No browser: the functions are taken from the built page by name and given what the
browser would send, including what a user can put in the browser's own storage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from apps.ui.service import ChatService, UiError
from graph.settings import Settings
from tests.support.stores import STORE_DOWN, FlakyStore
from tools.memory import OpenMemory
from tools.memory.locks import LocalThreadLocks
from tools.models import FakeChatModel

Page = dict[str, Callable[..., Any]]
"""The page's event functions by name."""

OPENED = ("user", "thread", "saved", "who", "threads", "chat", "status")
"""The outputs of every event that opens a thread, in order."""


class Request:
    """What the page functions read of ``gr.Request``."""

    def __init__(self, session: str = "s1") -> None:
        self.session_hash = session


@pytest.fixture
def service(make_settings: Callable[..., Settings], fake_model: FakeChatModel) -> ChatService:
    settings = make_settings()
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    return ChatService(settings, memory, model=fake_model)


@pytest.fixture
def page(service: ChatService) -> Page:
    """The page's event functions by name."""
    from apps.ui.page import build_ui

    blocks = build_ui(service)
    return {f.fn.__name__: f.fn for f in blocks.fns.values() if f.fn is not None}


def opened(outputs: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(OPENED, outputs, strict=True))


def respond(page: Page, text: Any, user: str, thread: str, **knobs: Any) -> list[tuple[Any, ...]]:
    controls = {"temp": 0.2, "p": 0.9, "tokens": 64, "sample": True, "level": "moderate"}
    controls.update(knobs)
    return list(page["respond"](text, [], user, thread, *controls.values(), Request()))


@pytest.mark.parametrize(
    "state",
    [
        {"user": "a/b", "thread": "t1"},
        {"user": "x" * 65, "thread": ""},
        {"user": " -lead", "thread": None},
    ],
)
def test_a_saved_user_the_service_refuses_is_not_signed_in(
    page: Page, state: dict[str, Any]
) -> None:
    out = opened(page["restore"](state)[: len(OPENED)])
    assert out["user"] == ""
    assert out["who"] == "Not signed in."
    assert out["saved"] == {"user": "", "thread": ""}
    assert "user name" in out["status"]


@pytest.mark.parametrize(
    "state", ["alice", ["alice"], {"user": ["alice"]}, {"user": 7}, None, {}, {"thread": "t1"}]
)
def test_saved_state_of_the_wrong_shape_counts_as_nothing_saved(page: Page, state: Any) -> None:
    import gradio as gr

    # Every output skipped: the page stays as it is (the name box may be typed in).
    assert list(page["restore"](state)) == [gr.skip()] * (len(OPENED) + 1)


def test_a_saved_user_and_thread_reopen_the_thread(page: Page, service: ChatService) -> None:
    respond(page, "first words", "alice", "t1")
    out = page["restore"]({"user": "alice", "thread": "t1"})
    assert opened(out[: len(OPENED)])["thread"] == "t1"
    assert opened(out[: len(OPENED)])["chat"][0] == {"role": "user", "content": "first words"}
    assert out[-1] == "alice"


@pytest.mark.parametrize("thread_id", ["a\x00b", "x" * 500, "../t1", " t1"])
def test_a_saved_thread_id_outside_the_rule_opens_a_new_thread_and_says_why(
    page: Page, thread_id: str
) -> None:
    out = opened(page["restore"]({"user": "alice", "thread": thread_id})[: len(OPENED)])
    assert out["user"] == "alice"
    assert out["thread"] != thread_id and len(out["thread"]) == 36  # a new UUID
    assert out["saved"]["thread"] == out["thread"]
    assert "Not a thread id" in out["status"]


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"tokens": None}, "max_new_tokens"),
        ({"temp": None}, "temperature"),
        ({"p": "high"}, "top_p"),
        ({"level": "lax"}, "safety_level"),
        ({"tokens": 0}, "max_new_tokens"),
    ],
)
def test_a_control_the_browser_sent_wrong_is_a_message(
    page: Page, fake_model: FakeChatModel, knobs: dict[str, Any], field: str
) -> None:
    (out,) = respond(page, "hello", "alice", "t1", **knobs)
    assert field in out[2] and "invalid generation settings" in out[2]
    assert fake_model.calls == []


def test_a_turn_through_the_page_ends_with_the_reply(page: Page) -> None:
    outs = respond(page, "hello", "alice", "t1", tokens=64.0)
    assert outs[-1][0][-1] == {"role": "assistant", "content": "Hello from the fake model."}


def test_deleting_a_new_thread_opens_another_without_an_error(page: Page) -> None:
    out = opened(page["drop_thread"]("alice", "never-written", {}))
    assert out["status"] == ""
    assert out["thread"] not in ("", "never-written")


def test_a_thread_deleted_in_another_tab_is_deleted_here_too(page: Page) -> None:
    respond(page, "one", "alice", "t1")
    respond(page, "two", "alice", "t2")
    out = opened(page["drop_thread"]("alice", "t1", {}))  # another tab
    assert out["status"] == ""
    # This tab still lists t1: deleting it, or opening it, is not an error.
    again = opened(page["drop_thread"]("alice", "t1", {}))
    assert again["status"] == ""
    picked = opened(page["pick_thread"]("t1", "alice", {}))
    assert "gone" in picked["status"]
    assert picked["thread"] != "t1"
    assert picked["chat"] == []
    assert [c[1] for c in picked["threads"]["choices"]] == ["t2"]


def test_another_users_thread_by_id_is_not_opened(page: Page) -> None:
    respond(page, "secret plans", "alice", "a1")
    respond(page, "my own", "bob", "b1")
    for out in (
        opened(page["pick_thread"]("a1", "bob", {})),
        opened(page["restore"]({"user": "bob", "thread": "a1"})[: len(OPENED)]),
    ):
        assert out["chat"] == []
        assert out["thread"] not in ("a1", "b1")
        assert "No such thread" in out["status"]
        # Bob's own threads are still listed.
        assert out["threads"]["choices"] == [("my own", "b1")]
    refused = opened(page["drop_thread"]("bob", "a1", {}))
    assert "No such thread" in refused["status"]
    assert opened(page["pick_thread"]("a1", "alice", {}))["chat"][0]["content"] == "secret plans"


def broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the disk caught fire")


@pytest.mark.parametrize(
    ("event", "args", "breaks", "status"),
    [
        ("sign_in", ("alice", {}), "threads", -1),
        ("restore", ({"user": "alice", "thread": "t1"},), "history", -2),
        ("pick_thread", ("t1", "alice", {}), "owner_of", -1),
        ("start_new", ("alice", {}), "threads", -1),
        ("drop_thread", ("alice", "t1", {}), "delete_thread", -1),
        ("do_upload", (["/tmp/x.md"], "alice"), "ingest", -1),
        ("do_remove", ("0123456789abcdef", "alice"), "remove_listed", 0),
        ("do_forget", ("alice", ["k"]), "forget", -1),
    ],
)
def test_an_unexpected_failure_is_a_message_and_changes_nothing_else(
    page: Page,
    service: ChatService,
    monkeypatch: pytest.MonkeyPatch,
    event: str,
    args: tuple[Any, ...],
    breaks: str,
    status: int,
) -> None:
    import gradio as gr

    monkeypatch.setattr(service, breaks, broken)
    out = list(page[event](*args))
    assert "the disk caught fire" in out[status] and "RuntimeError" in out[status]
    assert [o for i, o in enumerate(out) if i != status % len(out)] == [gr.skip()] * (len(out) - 1)


@pytest.mark.parametrize(
    ("event", "args"), [("show_memories", ("alice", [])), ("list_for_user", ("alice", ""))]
)
def test_an_unexpected_failure_of_a_list_leaves_it_as_it_was(
    page: Page, service: ChatService, monkeypatch: pytest.MonkeyPatch, event: str, args: Any
) -> None:
    import gradio as gr

    monkeypatch.setattr(service, "memories", broken)
    monkeypatch.setattr(service, "document_list", broken)
    *lists, status = page[event](*args)
    assert lists == [gr.skip()] * len(lists)
    assert "the disk caught fire" in status


@pytest.fixture
def memory_page(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> tuple[Page, ChatService, FlakyStore]:
    from apps.ui.page import build_ui

    settings = make_settings()
    store = FlakyStore()
    service = ChatService(
        settings, OpenMemory(InMemorySaver(), store, LocalThreadLocks()), model=fake_model
    )
    page = {f.fn.__name__: f.fn for f in build_ui(service).fns.values() if f.fn is not None}
    return page, service, store


@pytest.mark.parametrize("failure", STORE_DOWN, ids=lambda e: type(e).__name__)
def test_a_memory_list_that_cannot_be_read_says_why_and_is_not_shown_as_empty(
    memory_page: tuple[Page, ChatService, FlakyStore], failure: Exception
) -> None:
    page, _service, store = memory_page
    respond(page, "My name is Alice and I live in Lyon.", "alice", "a1")
    listed, status = page["show_memories"]("alice", [])
    assert listed["choices"] and listed["info"] == "" and status == gr_skip()
    store.failure = failure
    # Opening the panel, signing in (with the list of files) and after a forget.
    expanded, status = page["show_memories"]("alice", [])
    _files, signed_in, status_after_sign_in = page["list_for_user"]("alice", "")
    for listed, said in ((expanded, status), (signed_in, status_after_sign_in)):
        assert "memory store is unavailable" in said and str(failure) in said
        assert listed["choices"] == []
        assert str(failure) in listed["info"]  # the list itself says it is not shown
    store.failure = None  # back: nothing was lost, and the list says nothing more
    listed, status = page["show_memories"]("alice", [])
    assert listed["choices"] and listed["info"] == "" and status == gr_skip()


def test_opening_the_memory_panel_keeps_what_was_ticked_before_its_list_came(
    memory_page: tuple[Page, ChatService, FlakyStore],
) -> None:
    # The panel's list is refreshed when it opens; on a slow machine the refresh arrives
    # after the user ticked a memory, which "Forget selected" then never saw.
    page, _service, _store = memory_page
    respond(page, "My name is Alice and I live in Lyon.", "alice", "a1")
    listed, _ = page["show_memories"]("alice", [])
    keys = [key for _, key in listed["choices"]]
    assert keys and listed["value"] == []
    listed, _ = page["show_memories"]("alice", [keys[0], "gone-meanwhile"])
    assert listed["value"] == [keys[0]]  # still listed: kept; forgotten elsewhere: dropped
    forgotten, status = page["do_forget"]("alice", listed["value"])
    assert "Forgot 1 memory." in status and forgotten["value"] == []
    # Signing in lists again too: the same user's ticks stay, another user's go.
    listed, _ = page["show_memories"]("alice", [])
    keys = [key for _, key in listed["choices"]]
    _files, again, _ = page["list_for_user"]("alice", "", keys[:1])
    assert again["value"] == keys[:1]
    _files, bob, _ = page["list_for_user"]("bob", "", keys[:1])
    assert bob["value"] == []


def test_a_forget_whose_list_cannot_be_read_again_says_both(
    memory_page: tuple[Page, ChatService, FlakyStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    page, service, _store = memory_page
    respond(page, "My name is Alice and I live in Lyon.", "alice", "a1")
    key = service.memories("alice")[0].key

    def gone(user: str) -> Any:
        raise UiError("The memory store is unavailable: Error 111")

    monkeypatch.setattr(service, "memories", gone)
    listed, status = page["do_forget"]("alice", [key])
    assert "Forgot 1 memory." in status and "Error 111" in status
    assert listed["choices"] == [] and "Error 111" in listed["info"]


def test_lists_that_cannot_be_read_at_sign_in_add_to_what_the_sign_in_said(
    page: Page, service: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tools.documents.store import DocumentStoreError

    def no_files(user: str) -> Any:
        raise DocumentStoreError("Chroma at localhost:8000 is unreachable")

    def no_memories(user: str) -> Any:
        raise UiError("The memory store is unavailable: Error 111")

    monkeypatch.setattr(service, "documents", no_files)
    monkeypatch.setattr(service, "memories", no_memories)
    signed_in = '<div class="notice">The memory store is unavailable: Error 111</div>'
    files, memories, status = page["list_for_user"]("alice", signed_in)
    assert files["choices"] == [] and "Chroma" in files["info"]
    assert memories["choices"] == [] and "Error 111" in memories["info"]
    # The sign-in's word stays, the files' is added, the same word is not said twice.
    assert status.startswith(signed_in)
    assert status.count("Error 111") == 1 and status.count("Chroma") == 1


def test_lists_that_are_read_leave_the_status_line_alone(
    memory_page: tuple[Page, ChatService, FlakyStore],
) -> None:
    page, _service, _store = memory_page
    files, memories, status = page["list_for_user"]("alice", '<div class="notice">hi</div>')
    assert files["choices"] == [] and files["info"] == ""
    assert memories["choices"] == [] and memories["info"] == ""
    assert status == gr_skip()


def gr_skip() -> Any:
    import gradio as gr

    return gr.skip()


def test_gradio_still_gives_a_guarded_event_its_progress_tracker(page: Page) -> None:
    import gradio as gr
    from gradio.helpers import special_args

    inputs, progress_index, _, _ = special_args(page["do_upload"], [["/tmp/x.md"], "alice"])
    assert progress_index == 2
    assert isinstance(inputs[2], gr.Progress)


@pytest.mark.parametrize(("count", "said"), [(1, "Forgot 1 memory."), (2, "Forgot 2 memories.")])
def test_forgot_counts_in_words(count: int, said: str) -> None:
    from apps.ui.page import forgot

    assert forgot(count) == said


def test_forget_asks_for_a_choice_and_says_when_nothing_was_left(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    from apps.ui.page import build_ui
    from tests.support.embeddings import word_store

    settings = make_settings()
    memory = OpenMemory(InMemorySaver(), word_store(settings), LocalThreadLocks())
    service = ChatService(settings, memory, model=fake_model)
    page = {f.fn.__name__: f.fn for f in build_ui(service).fns.values() if f.fn is not None}
    respond(page, "My name is Alice and I live in Lyon.", "alice", "a1")
    keys = [m.key for m in service.memories("alice") if m.kind == "facts"][:1]
    assert keys
    nothings: list[list[str] | None] = [None, []]
    for nothing in nothings:
        _, status = page["do_forget"]("alice", nothing)
        assert "Tick what to forget" in status
    assert service.memories("alice")  # nothing went
    _, status = page["do_forget"]("alice", keys)
    assert "Forgot" in status
    _, status = page["do_forget"]("alice", keys)  # again, from a tab that still lists it
    assert "already gone" in status


def test_a_turn_that_fails_to_start_is_a_message_and_keeps_the_message(
    page: Page, service: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradio as gr

    monkeypatch.setattr(service, "turn", broken)
    (out,) = respond(page, "hello", "alice", "t1")
    assert "The turn failed: the disk caught fire" in out[2]
    assert out[1] == gr.skip()  # the message stays in its box


@pytest.mark.parametrize("long_term", [True, False])
def test_with_threads_off_a_reply_stays_and_the_page_says_once_why_nothing_is_listed(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel, long_term: bool
) -> None:
    from apps.ui.page import build_ui

    settings = make_settings()
    store = InMemoryStore() if long_term else None
    service = ChatService(settings, OpenMemory(None, store, LocalThreadLocks()), model=fake_model)
    page = {f.fn.__name__: f.fn for f in build_ui(service).fns.values() if f.fn is not None}
    signed_in = opened(page["sign_in"]("alice", {}))
    assert "no threads are kept" in signed_in["status"]
    assert signed_in["threads"]["choices"] == []
    *_, last = respond(page, "hello", "alice", signed_in["thread"])
    chat, box, status, _, threads, _ = last
    assert chat[-1] == {"role": "assistant", "content": "Hello from the fake model."}
    assert box == gr_skip() and status == ""
    assert threads["choices"] == [] and threads["value"] is None  # no choice it lacks
    listed, said = page["show_memories"]("alice", [])
    assert said == gr_skip() and bool(listed["choices"]) is long_term
    assert (listed["info"] == "") is long_term  # off: the list says so, not just empty


@pytest.mark.parametrize(
    "failure",
    [UiError("The memory store is unavailable: gone"), RuntimeError("the disk caught fire")],
)
def test_a_thread_list_that_fails_after_a_turn_keeps_the_saved_reply(
    page: Page, service: ChatService, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    import gradio as gr

    def threads(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(service, "threads", threads)
    chat, box, status, _, listed, send = respond(page, "hello", "alice", "t1")[-1]
    assert chat[-1] == {"role": "assistant", "content": "Hello from the fake model."}
    assert box == gr.skip()  # the message does not come back into the box
    assert listed == gr.skip()  # the list stays as it was
    assert "reply is saved" in status and str(failure) in status
    assert send["interactive"] is True
    rows, _ = service.history("alice", "t1")
    assert rows[-1]["content"] == "Hello from the fake model."


def test_a_turn_selects_its_thread_only_when_the_list_has_it(page: Page) -> None:
    *_, listed, _ = respond(page, "hello", "alice", "t1")[-1]
    assert listed["value"] == "t1" and ("hello", "t1") in listed["choices"]


def test_the_queue_polls_less_often_than_gradio_and_keeps_the_concurrency(
    service: ChatService,
) -> None:
    from apps.ui.page import PROGRESS_POLL_S, QUEUE_POLL_S, build_ui, queued

    blocks = build_ui(service)
    gradio = blocks._queue  # what Gradio's own queue() gives
    assert gradio.sleep_when_free < QUEUE_POLL_S
    assert queued(blocks, concurrency=3) is blocks
    assert blocks._queue.sleep_when_free == QUEUE_POLL_S
    assert blocks._queue.progress_update_sleep_when_free == PROGRESS_POLL_S
    assert blocks._queue.default_concurrency_limit == 3


def test_a_gradio_queue_without_the_polling_attributes_is_left_alone(
    service: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.ui.page import build_ui, queued

    blocks = build_ui(service)

    class Bare:
        pass

    def queue(**_: Any) -> Any:
        setattr(blocks, "_queue", Bare())  # noqa: B010 (not a Queue: mypy would object)
        return blocks

    monkeypatch.setattr(blocks, "queue", queue)
    queued(blocks)
    assert not hasattr(blocks._queue, "sleep_when_free")
