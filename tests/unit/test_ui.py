"""The web UI's back end (apps/ui/service.py) on the fake model, without a browser."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver

from apps.turns import STOPPED_MARK
from apps.ui.service import (
    MAX_MESSAGE_CHARS,
    ChatService,
    Controls,
    TurnResult,
    UiError,
    check_user,
    diagnostics,
    ingest_summary,
    make_context,
    title_of,
    user_collection,
)
from graph.settings import Settings, SettingsError
from tests.conftest import assistant
from tests.support.embeddings import word_store
from tests.support.locks import GateLocks
from tests.support.stores import STORE_DOWN, FlakyStore
from tools.documents.store import check_collection_name
from tools.memory import OpenMemory
from tools.memory.locks import LocalThreadLocks
from tools.models import FakeChatModel

ROOT = Path(__file__).resolve().parents[2]


def memory(settings: Settings, *, store: bool = False) -> OpenMemory:
    return OpenMemory(InMemorySaver(), word_store(settings) if store else None, LocalThreadLocks())


@pytest.fixture
def service(make_settings: Callable[..., Settings], fake_model: FakeChatModel) -> ChatService:
    settings = make_settings()
    return ChatService(settings, memory(settings, store=True), model=fake_model)


def run(
    service: ChatService, user: str, thread: str, text: str, controls: Controls | None = None
) -> tuple[list[str], TurnResult]:
    tokens: list[str] = []
    result: TurnResult | None = None
    for item in service.turn(user, thread, text, controls or Controls(), session="s1"):
        if isinstance(item, TurnResult):
            result = item
        else:
            tokens.append(item)
    assert result is not None
    return tokens, result


def test_a_turn_streams_tokens_then_the_result_with_diagnostics(service: ChatService) -> None:
    tokens, result = run(service, "alice", "t1", "hello there")
    assert len(tokens) > 1
    assert "".join(tokens) == result.reply == "Hello from the fake model."
    assert not result.stopped
    diag = result.diagnostics
    assert diag["prompt_tokens"] > 0
    assert diag["time_to_first_token_s"] is not None
    assert diag["tokens"] == len(tokens)
    assert diag["safety"]["allowed"] is True
    assert diag["retrieval"]["status"] is not None


@pytest.mark.parametrize(
    "controls",
    [
        Controls(temperature=0.7, top_p=0.5, max_new_tokens=3, do_sample=True),
        Controls(temperature=1.4, top_p=0.95, max_new_tokens=40, do_sample=False),
    ],
)
def test_the_session_controls_reach_the_model_call(
    service: ChatService, fake_model: FakeChatModel, controls: Controls
) -> None:
    _, result = run(service, "alice", "t1", "hello there", controls)
    kwargs = fake_model.call_kwargs[-1]
    assert kwargs["temperature"] == controls.temperature
    assert kwargs["top_p"] == controls.top_p
    assert kwargs["max_new_tokens"] == controls.max_new_tokens
    assert kwargs["do_sample"] is controls.do_sample
    assert len(result.reply.split()) == min(controls.max_new_tokens, 5)


def test_two_sessions_keep_their_own_controls(
    service: ChatService, fake_model: FakeChatModel
) -> None:
    run(service, "alice", "a", "hi", Controls(temperature=0.1))
    run(service, "bob", "b", "hi", Controls(temperature=1.9))
    run(service, "alice", "a", "hi again", Controls(temperature=0.1))
    assert [k["temperature"] for k in fake_model.call_kwargs] == [0.1, 1.9, 0.1]


def test_the_safety_level_of_the_session_is_used(service: ChatService) -> None:
    _, strict = run(service, "alice", "a", "hello", Controls(safety_level="strict"))
    _, relaxed = run(service, "alice", "b", "hello", Controls(safety_level="relaxed"))
    assert strict.diagnostics["safety"]["level"] == "strict"
    assert relaxed.diagnostics["safety"]["level"] == "relaxed"


def test_stop_ends_the_generation_keeps_the_partial_reply_and_the_next_turn_works(
    make_settings: Callable[..., Settings],
) -> None:
    model = FakeChatModel(reply=" ".join(f"word{i}" for i in range(400)), delay=0.01)
    settings = make_settings()
    service = ChatService(settings, memory(settings), model=model)
    streamed: list[str] = []
    result: TurnResult | None = None
    for item in service.turn("alice", "t1", "tell me a long story", Controls(), session="tab"):
        if isinstance(item, TurnResult):
            result = item
            break
        streamed.append(item)
        if len(streamed) == 3:
            # From another thread, as the page's Stop button does.
            threading.Thread(target=service.stop, args=("tab",)).start()
    assert result is not None and result.stopped
    assert result.reply.endswith(STOPPED_MARK)
    assert result.reply.startswith("word0 word1 word2")
    assert len(streamed) < 50
    rows, _ = service.history("alice", "t1")
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assert rows[1]["content"] == result.reply
    # The model is free and the thread goes on.
    model.reply = "fine, thanks"
    _tokens, after = run(service, "alice", "t1", "and now?")
    assert after.reply == "fine, thanks" and not after.stopped
    rows, _ = service.history("alice", "t1")
    assert [r["content"] for r in rows][-2:] == ["and now?", "fine, thanks"]


def test_a_stop_from_another_session_does_not_stop_this_one(service: ChatService) -> None:
    service.stop("another tab")
    _, result = run(service, "alice", "t1", "hello")
    assert not result.stopped


def long_story_service(make_settings: Callable[..., Settings]) -> ChatService:
    model = FakeChatModel(reply=" ".join(f"word{i}" for i in range(100)), delay=0.002)
    settings = make_settings()
    return ChatService(settings, memory(settings), model=model)


def finish(items: Any) -> TurnResult:
    *_, result = items
    assert isinstance(result, TurnResult)
    return result


@pytest.mark.parametrize(
    ("session_a", "session_b", "pressed", "stopped"),
    [
        ("", "", "", set()),  # two requests without a session id: neither is anyone's
        ("tab-a", "", "", set()),
        ("", "tab-b", "tab-b", {"b"}),
        ("tab-a", "tab-b", "tab-a", {"a"}),
        ("tab-a", "tab-b", "tab-c", set()),
        ("tab-a", "tab-a", "tab-a", {"a", "b"}),  # one tab's two turns: its Stop ends both
    ],
)
def test_a_stop_ends_only_the_turns_of_its_own_session(
    make_settings: Callable[..., Settings],
    session_a: str,
    session_b: str,
    pressed: str,
    stopped: set[str],
) -> None:
    service = long_story_service(make_settings)
    turns = {
        "a": service.turn("alice", "t1", "a long story", Controls(), session=session_a),
        "b": service.turn("bob", "t2", "a long story", Controls(), session=session_b),
    }
    for items in turns.values():  # both are streaming when the Stop comes
        for _ in range(3):
            assert isinstance(next(items), str)
    assert service.stop(pressed) == len(stopped)
    results = {name: finish(items) for name, items in turns.items()}
    assert {name for name, result in results.items() if result.stopped} == stopped
    for name, result in results.items():
        if name not in stopped:
            assert result.reply.endswith("word99")


def test_a_turn_that_ends_does_not_take_the_stop_of_another_in_its_session(
    make_settings: Callable[..., Settings],
) -> None:
    service = long_story_service(make_settings)
    first = service.turn("alice", "t1", "a long story", Controls(), session="tab")
    second = service.turn("alice", "t2", "a long story", Controls(), session="tab")
    next(first), next(second)
    service.stop("tab")
    assert finish(first).stopped  # the first ends before the second reads on
    assert finish(second).stopped


def test_a_stop_reaches_no_later_turn_and_no_signal_is_left_behind(
    make_settings: Callable[..., Settings],
) -> None:
    service = long_story_service(make_settings)
    assert service.stop("tab") == 0  # nothing runs: nothing to stop, nothing kept for later
    assert not finish(service.turn("alice", "t1", "hi", Controls(), session="tab")).stopped
    # Turns that end every way: finished, stopped, closed by a page that went away, refused.
    finish(service.turn("alice", "t1", "hi", Controls(), session="done"))
    stopped = service.turn("alice", "t1", "hi", Controls(), session="stopped")
    next(stopped)
    service.stop("stopped")
    assert finish(stopped).stopped
    closed = service.turn("alice", "t3", "hi", Controls(), session="closed")
    next(closed)
    closed.close()
    with pytest.raises(UiError):
        service.turn("bob", "t1", "not yours", Controls(), session="refused")
    for session in ("tab", "done", "stopped", "closed", "refused"):
        assert service.stop(session) == 0
    assert not finish(service.turn("alice", "t1", "hi", Controls(), session="stopped")).stopped


def test_each_user_lists_only_their_threads_titled_by_the_first_message(
    service: ChatService,
) -> None:
    run(service, "alice", "a1", "first question of alice")
    run(service, "alice", "a1", "a follow-up")
    run(service, "alice", "a2", "x" * 100)
    run(service, "bob", "b1", "bob asks")
    alice = service.threads("alice")
    assert {t.thread_id for t in alice} == {"a1", "a2"}
    assert alice[0].thread_id == "a2"  # newest first
    titles = {t.thread_id: t.title for t in alice}
    assert titles["a1"] == "first question of alice"
    assert len(titles["a2"]) == 60 and titles["a2"].endswith("…")
    assert [t.thread_id for t in service.threads("bob")] == ["b1"]
    assert service.threads("carol") == []


def test_a_user_cannot_open_write_or_delete_another_users_thread(service: ChatService) -> None:
    run(service, "alice", "a1", "secret plans")
    with pytest.raises(UiError, match="No such thread"):
        service.history("bob", "a1")
    with pytest.raises(UiError, match="No such thread"):
        run(service, "bob", "a1", "let me in")
    with pytest.raises(UiError, match="No such thread"):
        service.delete_thread("bob", "a1")
    rows, _ = service.history("alice", "a1")
    assert next(r["content"] for r in rows) == "secret plans"


def test_another_user_racing_for_a_new_thread_is_refused_under_the_lock(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    # Bob's early owner check passes (the thread does not exist yet) while Alice's turn
    # holds it; the check under the lock must then see it is Alice's.
    settings = make_settings()
    locks = GateLocks()
    memory = OpenMemory(InMemorySaver(), None, locks)
    service = ChatService(settings, memory, model=fake_model, wait=30)
    alice, bob = locks.race(
        lambda: run(service, "alice", "shared", "My PIN is 1234"),
        lambda: run(service, "bob", "shared", "What did the last message say?"),
    )
    results = {"alice": alice, "bob": bob}
    assert isinstance(results["alice"], tuple)
    assert isinstance(results["bob"], UiError) and "No such thread" in str(results["bob"])
    assert len(fake_model.calls) == 1  # Bob's message reached no model
    assert service.owner_of("shared") == "alice"


def test_a_thread_someone_else_wrote_to_since_is_no_longer_listed(service: ChatService) -> None:
    # The CLI runs turns as any --user: the thread is then the newest writer's, and the
    # list must agree with opening it.
    from apps.turns import turn_config
    from graph.context import Context

    run(service, "alice", "shared", "my question")
    run(service, "alice", "mine", "another")
    service.graph.invoke(
        {"messages": [("user", "bob was here")]},
        turn_config("shared", "bob"),
        context=Context(user_id="bob"),
    )
    assert [t.thread_id for t in service.threads("alice")] == ["mine"]
    assert [t.thread_id for t in service.threads("bob")] == ["shared"]
    with pytest.raises(UiError, match="No such thread"):
        service.history("alice", "shared")


class CountingSaver(InMemorySaver):
    """An in-memory checkpointer that counts the threads' newest checkpoints it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        self.reads += 1
        return super().get_tuple(config)


def test_listing_threads_reads_only_those_written_since_the_last_listing(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    settings = make_settings()
    saver = CountingSaver()
    service = ChatService(settings, OpenMemory(saver, None, LocalThreadLocks()), model=fake_model)
    for n in range(6):
        run(service, "alice" if n % 2 else "bob", f"t{n}", f"question {n}")
        run(service, "alice" if n % 2 else "bob", f"t{n}", "and a follow-up")
    assert [t.thread_id for t in service.threads("alice")] == ["t5", "t3", "t1"]
    saver.reads = 0
    assert [t.thread_id for t in service.threads("alice")] == ["t5", "t3", "t1"]
    assert [t.thread_id for t in service.threads("bob")] == ["t4", "t2", "t0"]
    assert saver.reads == 0  # nothing new: nothing read again, whoever lists
    run(service, "alice", "t1", "one more")
    saver.reads = 0
    listed = service.threads("alice")
    assert (listed[0].thread_id, listed[0].title) == ("t1", "question 1")
    assert saver.reads == 1  # t1, once


def write_as(service: ChatService, thread_id: str, user: str | None, text: str) -> None:
    """A turn as a notebook or the CLI writes it: as any user, or naming none."""
    from apps.turns import turn_config
    from graph.context import Context

    config = turn_config(thread_id, user) if user else {"configurable": {"thread_id": thread_id}}
    context = Context(user_id=user) if user else Context()
    service.graph.invoke({"messages": [("user", text)]}, config, context=context)


def test_a_listing_kept_from_before_sees_every_later_change(service: ChatService) -> None:
    run(service, "alice", "a1", "first of a1")
    run(service, "alice", "a2", "first of a2")
    run(service, "bob", "b1", "first of b1")
    for user in ("alice", "bob", service.default_owner):
        service.threads(user)
    # Written since, by others than the page: another owner, a new title, a new thread.
    write_as(service, "a2", "bob", "bob took a2")
    assert service.delete_thread("bob", "b1")
    write_as(service, "b1", "bob", "b1 again, new title")
    write_as(service, "n1", None, "no owner named")
    assert [t.thread_id for t in service.threads("alice")] == ["a1"]
    bob = {t.thread_id: t.title for t in service.threads("bob")}
    assert bob == {"a2": "first of a2", "b1": "b1 again, new title"}
    assert [t.thread_id for t in service.threads(service.default_owner)] == ["n1"]
    # Deleted since the listing: gone from it.
    assert service.delete_thread("alice", "a1")
    assert service.threads("alice") == []


@pytest.mark.parametrize("name", ["api", " api "])
def test_the_api_anonymous_user_cannot_sign_in(service: ChatService, name: str) -> None:
    with pytest.raises(UiError, match="reserved"):
        service.check_user(name)
    with pytest.raises(UiError, match="reserved"):
        run(service, name, "t1", "show me the anonymous threads")
    with pytest.raises(UiError, match="reserved"):
        service.threads(name)
    with pytest.raises(UiError, match="reserved"):
        service.history(name, "t1")


def test_threads_that_name_no_owner_are_the_machine_users(service: ChatService) -> None:
    # A thread written before checkpoints recorded their owner (or by a run naming none).
    service.graph.invoke(
        {"messages": [("user", "an old question")]}, {"configurable": {"thread_id": "old"}}
    )
    run(service, "alice", "a1", "alice's own")
    local = service.default_owner
    assert "old" in {t.thread_id for t in service.threads(local)}
    assert {t.thread_id for t in service.threads("alice")} == {"a1"}
    rows, _ = service.history(local, "old")
    assert next(r["content"] for r in rows) == "an old question"
    with pytest.raises(UiError, match="No such thread"):
        service.history("alice", "old")


BAD_THREAD_IDS = ["", " t1", "t1\n", "a\x00b", "x" * 129, "ünï", "a/b", "-t1", None, 7]


@pytest.mark.parametrize("thread_id", BAD_THREAD_IDS, ids=repr)
def test_a_thread_id_outside_the_rule_of_every_front_end_is_refused(
    service: ChatService, fake_model: FakeChatModel, thread_id: Any
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: run(service, "alice", thread_id, "hello"),
        lambda: service.history("alice", thread_id),
        lambda: service.owner_of(thread_id),
    ]
    for call in calls:
        with pytest.raises(UiError, match="Not a thread id") as caught:
            call()
        assert len(str(caught.value)) < 200 and "\x00" not in str(caught.value)
    assert fake_model.calls == [] and service.threads("alice") == []
    assert service.delete_thread("alice", thread_id) is False  # nothing there: no error


def test_a_thread_kept_from_before_the_rule_can_still_be_deleted(service: ChatService) -> None:
    # Written by a notebook or an older page straight through the graph.
    service.graph.invoke(
        {"messages": [("user", "hi")]},
        {"configurable": {"thread_id": "old id ✓", "user_id": "alice"}},
        context={"user_id": "alice"},
    )
    assert service.delete_thread("alice", "old id ✓") is True


@pytest.mark.parametrize("thread_id", [str(uuid.uuid4()), "t1", "telegram:123", "a" * 128])
def test_thread_ids_of_the_rule_are_kept(service: ChatService, thread_id: str) -> None:
    run(service, "alice", thread_id, "hello")
    assert [t.thread_id for t in service.threads("alice")] == [thread_id]
    assert service.delete_thread("alice", thread_id)


def test_delete_thread_removes_it_from_the_list(service: ChatService) -> None:
    run(service, "alice", "a1", "one")
    run(service, "alice", "a2", "two")
    service.delete_thread("alice", "a1")
    assert [t.thread_id for t in service.threads("alice")] == ["a2"]
    assert service.history("alice", "a1")[0] == []


def test_deleting_a_thread_that_is_not_there_is_no_error(service: ChatService) -> None:
    run(service, "alice", "a1", "one")
    assert service.delete_thread("alice", "a1") is True
    # Deleted again (from another tab), never written (a new thread), an odd id.
    for thread_id in ("a1", "new-and-empty", "ünïcode ✓", ""):
        assert service.delete_thread("alice", thread_id) is False
    assert service.threads("alice") == []


@pytest.mark.parametrize("name", ["", " ", "a/b", "x" * 65])
def test_deleting_needs_a_valid_user(service: ChatService, name: str) -> None:
    run(service, "alice", "a1", "one")
    with pytest.raises(UiError, match=r"(?i)user name"):
        service.delete_thread(name, "a1")
    assert [t.thread_id for t in service.threads("alice")] == ["a1"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("\u200b\u200b", "empty"),
        ("\ufeff \u2060", "empty"),
        ("\x07\x1b\x7f", "empty"),
        ("y" * (MAX_MESSAGE_CHARS + 1), "too long"),
    ],
)
def test_bad_messages_are_messages_not_tracebacks(
    service: ChatService, fake_model: FakeChatModel, text: str, error: str
) -> None:
    # Refused by the call itself, before the page would show the message as sent.
    with pytest.raises(UiError, match=error):
        service.turn("alice", "t1", text, Controls())
    assert fake_model.calls == []


def test_a_message_over_the_prompt_budget_is_a_clear_message(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    settings = make_settings(context={"max_prompt_tokens": 200})
    service = ChatService(settings, memory(settings), model=fake_model)
    with pytest.raises(UiError, match="too long"):
        run(service, "alice", "t1", "word " * 300)
    assert service.history("alice", "t1")[0] == []


def test_a_busy_thread_is_a_message(service: ChatService) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with service.memory.locks.hold("t1", 1):
            held.set()
            release.wait(30)

    worker = threading.Thread(target=hold)
    worker.start()
    held.wait(30)
    try:
        with pytest.raises(UiError, match="busy"):
            run(service, "alice", "t1", "hello")
    finally:
        release.set()
        worker.join()
    _, result = run(service, "alice", "t1", "hello")
    assert result.reply


def test_a_missing_model_is_a_message(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(model={"backend": "llamacpp", "gguf_path": str(tmp_path / "no.gguf")})
    service = ChatService(settings, memory(settings))
    with pytest.raises(UiError, match="model cannot be loaded"):
        run(service, "alice", "t1", "hello")


@pytest.mark.parametrize("name", ["", "  ", "-dash-first", "a/b", "x" * 65, "semi;colon"])
def test_bad_user_names_are_refused(name: str) -> None:
    with pytest.raises(UiError):
        check_user(name)


@pytest.mark.parametrize("name", ["alice", " Bob ", "ana.maría@example.org", "7 of 9"])
def test_good_user_names_are_kept(name: str) -> None:
    assert check_user(name) == name.strip()


@pytest.mark.parametrize(
    ("controls", "field"),
    [(Controls(temperature=3.0), "temperature"), (Controls(top_p=0.0), "top_p"),
     (Controls(max_new_tokens=0), "max_new_tokens"), (Controls(safety_level="lax"), "safety"),
     (Controls(temperature="warm"), "temperature"),  # type: ignore[arg-type]
     (Controls(max_new_tokens=None), "max_new_tokens")],  # type: ignore[arg-type]
)  # fmt: skip
def test_out_of_range_controls_are_a_message(controls: Controls, field: str) -> None:
    with pytest.raises(UiError, match=field):
        make_context("alice", controls)


def test_memories_are_listed_per_user_and_can_be_forgotten(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    settings = make_settings()
    service = ChatService(settings, memory(settings, store=True), model=fake_model)
    run(service, "alice", "a1", "My name is Alice and I live in Lyon.")
    run(service, "bob", "b1", "I like green tea.")
    alice = service.memories("alice")
    assert alice and all("tea" not in m.text for m in alice)
    facts = [m for m in alice if m.kind == "facts"]
    assert facts
    assert service.forget("alice", [facts[0].key]) == 2  # the fact and the turn that said it
    left = service.memories("alice")
    assert facts[0].key not in {m.key for m in left}
    assert all("Lyon" not in m.text for m in left if m.kind == "turns")
    assert service.memories("bob")


def test_title_of_skips_non_user_messages() -> None:
    class M:
        def __init__(self, type_: str, text: str) -> None:
            self.type, self.text = type_, text

    assert title_of([M("system", "s"), M("human", "  two\nlines  ")]) == "two lines"
    assert title_of([]) == "(empty thread)"


CLUSTERS = {
    "flag": "🇫🇷",
    "skin tone": "👍🏽",
    "ZWJ family": "👨\u200d👩\u200d👧\u200d👦",
    "combining accent": "e\u0301",
    "two combining marks": "a\u0323\u0302",
    "keycap": "1\ufe0f\u20e3",
    "subdivision flag": "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "Hangul jamo": "\u1100\u1161\u11a8",
    "Devanagari": "क्षि",
    "plain": "x",
}


@pytest.mark.parametrize("cluster", CLUSTERS.values(), ids=CLUSTERS.keys())
@pytest.mark.parametrize("prefix", ["", "a", "ab "])
def test_a_shortened_text_is_cut_between_characters_never_inside_one(
    cluster: str, prefix: str
) -> None:
    from apps.ui.service import shortened
    from tools.text import GRAPHEME

    text = prefix + cluster * 12
    whole = GRAPHEME.findall(text)
    assert len(whole) == len(prefix) + 12  # the cluster is one character
    for limit in range(1, len(whole) + 3):
        short = shortened(text, limit)
        if limit >= len(whole):
            assert short == text
            continue
        assert short.endswith("…")
        kept = GRAPHEME.findall(short[:-1])
        assert len(kept) + 1 <= limit
        # Whole characters of the text, from its start: none cut, none changed.
        assert kept == whole[: len(kept)]
        assert len(kept) >= limit - 2  # at most a space before the cut dropped


def test_a_title_counts_characters_not_code_points() -> None:
    class M:
        def __init__(self, text: str) -> None:
            self.type, self.text = "human", text

    family = CLUSTERS["ZWJ family"]
    assert title_of([M(family * 60)]) == family * 60  # 60 characters: not cut
    assert title_of([M(family * 61)]) == family * 59 + "…"
    assert title_of([M("🇫🇷" * 3 + " and more")], limit=5) == "🇫🇷🇫🇷🇫🇷…"
    assert title_of([M("cafe\u0301 " * 20)], limit=6) == "cafe\u0301…"
    # A "Zalgo" message: each letter under 20 stacked marks; the title keeps 4 a letter.
    marks = "".join(chr(0x0300 + i) for i in range(20))
    title = title_of([M("".join(c + marks for c in "Help me"))])
    assert title == "".join(c + marks[:4] for c in "Help me")


@pytest.mark.parametrize("limit", [0, -1])
def test_shortened_needs_room_for_one_character(limit: int) -> None:
    from apps.ui.service import shortened

    with pytest.raises(ValueError, match="at least 1"):
        shortened("text", limit)


def test_the_thread_list_title_of_an_emoji_message_keeps_every_emoji_whole(
    service: ChatService,
) -> None:
    message = "plan for the trip " + "🇯🇵👍🏽" * 40
    run(service, "alice", "t1", message)
    (thread,) = service.threads("alice")
    assert thread.title == "plan for the trip " + "🇯🇵👍🏽" * 20 + "🇯🇵…"


def test_tokens_per_second_leaves_out_the_first_token() -> None:
    diag = diagnostics({}, ttft=1.0, tokens=11, seconds=3.0)
    assert diag["tokens_per_s"] == 5.0
    assert diagnostics({}, ttft=None, tokens=0, seconds=1.0)["tokens_per_s"] is None


def test_the_ingest_summary_says_what_was_skipped_and_failed_and_why() -> None:
    report: dict[str, Any] = {
        "added": [{"path": "/u/a.md", "chunks": 3}, {"path": "/u/b.txt", "chunks": 2}],
        "replaced": [],
        "unchanged": ["/u/c.md"],
        "skipped": [{"path": "/u/empty.txt", "reason": "empty file"}],
        "failed": [{"path": "/u/bad.pdf", "reason": "corrupt PDF"}],
        "flagged": [],
    }
    text = ingest_summary(report)
    assert "2 added** (5 chunks)" in text
    assert "1 unchanged, 1 skipped, 1 failed" in text
    assert "skipped: `empty.txt`: empty file" in text
    assert "failed: `bad.pdf`: corrupt PDF" in text


@pytest.mark.parametrize(
    "name",
    [
        "a`[site](javascript:alert(1))`.md",
        "`start.md",
        "end`.txt",
        "two``ticks`.md",
        "<img src=x onerror=alert(1)>.html",
        "*bold* _it_ [x].md",
    ],
)
def test_a_file_name_in_the_ingest_summary_is_shown_as_it_is(name: str) -> None:
    from apps.ui.service import code_span

    span = code_span(name)
    # CommonMark: the fence is longer than any run of backticks inside, so none closes it.
    fence = re.match(r"`+", span)
    assert fence is not None
    inner = span[len(fence.group()) : -len(fence.group())]
    assert inner.strip(" ") == name and span.endswith(fence.group())
    assert all(len(run) < len(fence.group()) for run in re.findall(r"`+", inner))
    report = {"skipped": [{"path": f"/u/{name}", "reason": "empty [file](http://x) *now*"}]}
    line = ingest_summary(report).splitlines()[1]
    assert line == f"- skipped: {span}: empty \\[file\\]\\(http://x\\) \\*now\\*"


def test_the_cli_help_does_not_import_gradio() -> None:
    code = "import sys, apps.cli.main; print('gradio' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_sources_are_folded_rows_titled_by_file_and_page_or_section() -> None:
    from apps.ui.page import source_rows

    rows = source_rows(
        [
            {"name": "guide.pdf", "page": 3, "text": "Turn it off."},
            {"name": "notes.md", "section": "Setup > Install", "text": "# Install\n1. pip"},
        ]
    )
    assert [shown(r["metadata"]["title"]) for r in rows] == [
        "Source [1] guide.pdf, page 3",
        "Source [2] notes.md, section Setup > Install",
    ]
    assert rows[0]["content"] == "> Turn it off."
    # A passage's own markup is shown as text, not as headings or lists of the page.
    assert rows[1]["content"] == "> \\# Install\n> 1\\. pip"


def shown(markdown: str) -> str:
    """What a reader sees of a Markdown line: its text, and any markup as tags."""
    import html

    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable("strikethrough").renderInline(markdown)
    return rendered if "<" in rendered else html.unescape(rendered)


@pytest.mark.parametrize(
    ("passage", "title"),
    [
        ({"name": "*draft*.md", "section": "Plan"}, "*draft*.md, section Plan"),
        ({"name": "__init__.md"}, "__init__.md"),
        ({"name": "a<b>c.html", "page": None}, "a<b>c.html"),
        ({"name": "s.md", "section": "[site](http://example.org)"},
         "s.md, section [site](http://example.org)"),
        ({"name": "s.md", "section": "Intro\n# Two\n\n- three"},
         "s.md, section Intro # Two - three"),
        ({"name": "1. list.md", "page": 2}, "1. list.md, page 2"),
        ({"name": "back\\slash `code` ~~gone~~ | pipe &amp; .md"},
         "back\\slash `code` ~~gone~~ | pipe &amp; .md"),
        ({"name": "李雷的笔记 😀.pdf", "page": 7}, "李雷的笔记 😀.pdf, page 7"),
    ],
)  # fmt: skip
def test_a_source_title_shows_the_file_and_section_as_they_are(
    passage: dict[str, Any], title: str
) -> None:
    from apps.ui.page import source_rows

    (row,) = source_rows([{**passage, "text": "x"}])
    assert shown(row["metadata"]["title"]) == f"Source [1] {title}"


# --- per-user documents ------------------------------------------------------------------

NAMES = [
    "alice",
    "Alice",
    "ALICE",
    "ana maría",
    "ana maria",
    "ana-maria",
    "Ana María",
    "ana.maria",
    "李雷",
    "王芳",
    "Ωμέγα",
    "😀",
    "..",
    "...",
    "a..b",
    "-",
    "a",
    "ab",
    " alice ",
    "alice\n",
    "../../etc/passwd",
    "a/b",
    "user-alice",
    "default",
    "x" * 64,
    "x" * 65,
    "y" * 10_000,
    "Ǆemal",  # a ligature NFKD splits into letters
]


@pytest.mark.parametrize("name", NAMES)
def test_a_users_collection_name_is_valid_for_chroma_and_stable(name: str) -> None:
    collection = user_collection(name)
    assert check_collection_name(collection) == collection
    assert collection.startswith("user-")
    assert user_collection(name) == collection


def test_user_collection_names_never_collide() -> None:
    # Same slug, different names (case, accents, spaces, punctuation, length): all apart.
    collections = [user_collection(name) for name in NAMES]
    assert len(set(collections)) == len(NAMES)


def test_a_users_collection_name_is_the_same_in_every_process() -> None:
    # Pinned: a name that changed between releases would hide a user's files.
    assert user_collection("alice") == "user-alice-2bd806c97f0e00af"
    assert user_collection("Ana María") == "user-ana-maria-8358ed271ba38466"
    assert user_collection("李雷").removeprefix("user-").count("-") == 0  # no slug at all


def test_an_empty_user_has_no_collection() -> None:
    with pytest.raises(UiError, match="user name"):
        user_collection("")


@pytest.fixture
def doc_service(make_settings: Callable[..., Settings], fake_model: FakeChatModel) -> ChatService:
    settings = make_settings()
    return ChatService(settings, memory(settings), model=fake_model)


def write(folder: Path, name: str, text: str) -> Path:
    """A file as the page receives it: in a folder of its own (Gradio's upload cache)."""
    place = folder / uuid.uuid4().hex
    place.mkdir()
    (place / name).write_text(text)
    return place / name


TOWER = "# The Glass Tower\n\nThe Glass Tower of Wexmoor was designed by Ida Frane in 1911.\n"
MILL = "# The Old Mill\n\nThe old mill of Brantham grinds barley every Tuesday.\n"


def test_two_users_uploads_are_never_visible_to_each_other(
    doc_service: ChatService, tmp_path: Path
) -> None:
    # The same file name for both: each keeps their own copy and text.
    report = doc_service.ingest("alice", [write(tmp_path, "notes.md", TOWER)])
    assert [Path(f["path"]).name for f in report["added"]] == ["notes.md"]
    doc_service.ingest("bob", [write(tmp_path, "notes.md", MILL)])
    doc_service.ingest("bob", [write(tmp_path, "extra.txt", "Bob's extra notes.")])
    alice = doc_service.document_list("alice")
    bob = doc_service.document_list("bob")
    assert [d["name"] for d in alice] == ["notes.md"]
    assert sorted(d["name"] for d in bob) == ["extra.txt", "notes.md"]
    assert not {d["source"] for d in alice} & {d["source"] for d in bob}
    assert doc_service.document_list("carol") == []
    # Kept on disk per user too.
    alice_dir, bob_dir = doc_service.upload_dir("alice"), doc_service.upload_dir("bob")
    assert alice_dir != bob_dir
    assert "Ida Frane" in (alice_dir / "notes.md").read_text()
    assert "barley" in (bob_dir / "notes.md").read_text()
    # Searching one user's collection never finds the other's passages.
    found = doc_service.documents("bob").search("Who designed the Glass Tower of Wexmoor?", 4)
    assert all("Frane" not in p.text for p in found)
    # Nobody removes another user's file: the source is looked up in their own collection.
    alice_source = alice[0]["source"]
    with pytest.raises(UiError, match="Not in your collection"):
        doc_service.remove_document("bob", alice_source)
    assert [d["name"] for d in doc_service.document_list("alice")] == ["notes.md"]
    assert doc_service.remove_document("alice", alice_source) > 0
    assert doc_service.document_list("alice") == []
    assert not (alice_dir / "notes.md").exists()  # the uploaded copy is gone too
    assert len(doc_service.document_list("bob")) == 2
    assert (bob_dir / "notes.md").exists()


def test_in_a_shared_collection_two_users_files_of_one_name_are_both_kept(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel, tmp_path: Path
) -> None:
    settings = make_settings(chroma={"shared": True})
    service = ChatService(settings, memory(settings), model=fake_model)
    service.ingest("alice", [write(tmp_path, "report.md", TOWER)])
    report = service.ingest("bob", [write(tmp_path, "report.md", MILL)])
    assert [Path(f["path"]).name for f in report["added"]] == ["report.md"]
    assert report["replaced"] == []  # Bob's file did not replace Alice's
    listed = service.document_list("carol")  # everyone sees the shared collection
    assert sorted(d["name"] for d in listed) == ["report.md", "report.md"]
    assert "Ida Frane" in (service.upload_dir("alice") / "report.md").read_text()
    assert "barley" in (service.upload_dir("bob") / "report.md").read_text()
    # The list says whose each is; only its adder removes it, with its uploaded copy.
    assert sorted(d["added_by"] for d in listed) == ["alice", "bob"]
    alices = next(d["source"] for d in listed if d["added_by"] == "alice")
    with pytest.raises(UiError, match="added by alice"):
        service.remove_document("bob", alices)
    assert service.remove_document("alice", alices) > 0
    assert not (service.upload_dir("alice") / "report.md").exists()


@pytest.fixture
def shared(make_settings: Callable[..., Settings], fake_model: FakeChatModel) -> ChatService:
    settings = make_settings(chroma={"shared": True})
    return ChatService(settings, memory(settings), model=fake_model)


def test_in_a_shared_collection_nobody_removes_another_users_upload(
    shared: ChatService, tmp_path: Path
) -> None:
    shared.ingest("ada", [write(tmp_path, "report.md", TOWER)])
    shared.ingest("bob", [write(tmp_path, "report.md", MILL)])
    listed = shared.document_list("bob")
    adas = next(d for d in listed if d["added_by"] == "ada")
    assert not adas["removable"]
    assert [d["removable"] for d in listed if d["added_by"] == "bob"] == [True]
    copy = shared.upload_dir("ada") / "report.md"
    # By the page's key, by the stored path, by a path to it: all refused, nothing lost.
    with pytest.raises(UiError, match="added by ada: only they can remove it"):
        shared.remove_listed("bob", adas["key"])
    roundabout = copy.parent / ".." / copy.parent.name / copy.name
    for given in (adas["source"], str(copy), str(roundabout)):
        with pytest.raises(UiError, match="added by ada"):
            shared.remove_document("bob", given)
    assert copy.exists()
    assert shared.documents("ada").source_info(adas["source"]).chunks == adas["chunks"]
    # Nor does the machine's user (the operator on the page) remove a page user's file.
    with pytest.raises(UiError, match="added by ada"):
        shared.remove_listed(shared.default_owner, adas["key"])
    # Bob's own file of the same name goes, and only it.
    bobs = next(d for d in listed if d["added_by"] == "bob")
    assert shared.remove_listed("bob", bobs["key"]) == ("report.md", bobs["chunks"])
    assert [d["added_by"] for d in shared.document_list("ada")] == ["ada"]
    assert shared.remove_listed("ada", adas["key"])[0] == "report.md"
    assert shared.document_list("ada") == [] and not copy.exists()


def test_in_a_shared_collection_a_file_the_operator_ingested_is_the_machine_users(
    shared: ChatService, tmp_path: Path
) -> None:
    from tools.documents.ingest import ingest

    # `assistant ingest` writes no adder: the file is the machine user's (the operator).
    outside = write(tmp_path, "handbook.md", TOWER)
    ingest(shared.documents("ada"), [outside])
    (listed,) = shared.document_list("bob")
    assert listed["added_by"] == shared.default_owner and not listed["removable"]
    from apps.ui.page import document_choices

    assert document_choices(shared, "bob") == [
        (f"handbook.md (1 chunks, added by {shared.default_owner})", listed["key"])
    ]
    for user in ("bob", "ada"):
        with pytest.raises(UiError, match=f"added by {shared.default_owner}"):
            shared.remove_listed(user, listed["key"])
        with pytest.raises(UiError, match=f"added by {shared.default_owner}"):
            shared.remove_document(user, "handbook.md")  # a bare name resolves too
    assert shared.remove_listed(shared.default_owner, listed["key"]) == ("handbook.md", 1)
    assert outside.exists()  # not an upload: stays where it is


def test_in_own_collections_everyone_still_removes_their_files(
    doc_service: ChatService, tmp_path: Path
) -> None:
    from tools.documents.ingest import ingest

    # Nothing changes outside a shared collection: a user's collection is theirs alone,
    # and the machine's user removes what `assistant ingest` put in chroma.collection.
    doc_service.ingest("ada", [write(tmp_path, "report.md", TOWER)])
    (adas,) = doc_service.document_list("ada")
    assert adas["added_by"] == "ada" and adas["removable"]
    assert doc_service.remove_listed("ada", adas["key"]) == ("report.md", 1)
    local = doc_service.default_owner
    ingest(doc_service.documents(local), [write(tmp_path, "cli.md", MILL)])
    (cli,) = doc_service.document_list(local)
    assert cli["removable"] and doc_service.remove_listed(local, cli["key"])[0] == "cli.md"


def test_two_files_of_one_name_in_one_upload_are_both_kept(
    doc_service: ChatService, tmp_path: Path
) -> None:
    first, second = write(tmp_path, "report.md", TOWER), write(tmp_path, "report.md", MILL)
    third = write(tmp_path, "report.md", "# Third\n\nThe third report is about ferries.\n")
    given = write(tmp_path, "report (2).md", "# Given\n\nA file named like a copy.\n")
    report = doc_service.ingest("ada", [first, second, given, third])
    names = sorted(Path(f["path"]).name for f in report["added"])
    # Each is kept under a name no other file of the batch has, in the order given.
    assert names == ["report (2) (2).md", "report (2).md", "report (3).md", "report.md"]
    folder = doc_service.upload_dir("ada")
    texts = {p.name: p.read_text() for p in folder.iterdir()}
    assert texts == {
        "report.md": TOWER,
        "report (2).md": MILL,
        "report (2) (2).md": given.read_text(),
        "report (3).md": third.read_text(),
    }
    assert sorted(d["name"] for d in doc_service.document_list("ada")) == sorted(texts)
    # A later upload of the name still replaces the earlier file (how a file is updated).
    report = doc_service.ingest("ada", [write(tmp_path, "report.md", "# New\n\nNew text.\n")])
    assert [Path(f["path"]).name for f in report["replaced"]] == ["report.md"]
    assert len(doc_service.document_list("ada")) == 4


@pytest.mark.parametrize(
    ("name", "taken", "kept"),
    [
        ("a.md", set(), "a.md"),
        ("a.md", {"b.md"}, "a.md"),
        ("a.md", {"a.md"}, "a (2).md"),
        ("a.md", {"a.md", "a (2).md"}, "a (3).md"),
        ("notes", {"notes"}, "notes (2)"),
        ("x.tar.gz", {"x.tar.gz"}, "x.tar (2).gz"),
    ],
)
def test_batch_name(name: str, taken: set[str], kept: str) -> None:
    from apps.ui.service import batch_name

    assert batch_name(name, taken) == kept


def test_an_upload_the_store_does_not_take_is_not_kept_and_the_disk_matches_the_store(
    doc_service: ChatService, tmp_path: Path
) -> None:
    folder = doc_service.upload_dir("alice")
    # Binary content: skipped, and nothing of it stays in the upload folder.
    report = doc_service.ingest("alice", [write_bytes(tmp_path, "tool.txt", b"\x00\x01\xff" * 50)])
    assert [Path(p["path"]).name for p in report["skipped"] + report["failed"]] == ["tool.txt"]
    assert not (folder / "tool.txt").exists()
    # A good file, then a bad one of the same name: what stays on disk is what the
    # store holds (the ingest drops a file's passages when its new version is unreadable).
    doc_service.ingest("alice", [write(tmp_path, "notes.txt", "The mill grinds barley.")])
    doc_service.ingest("alice", [write_bytes(tmp_path, "notes.txt", b"\x00\xff" * 80)])
    listed = [d["name"] for d in doc_service.document_list("alice")]
    on_disk = sorted(p.name for p in folder.iterdir())  # no backups left either
    assert on_disk == listed
    if listed:
        assert (folder / "notes.txt").read_text() == "The mill grinds barley."
    # A good new version is taken.
    report = doc_service.ingest("alice", [write(tmp_path, "notes.txt", "The mill grinds oats.")])
    assert [Path(f["path"]).name for f in report["added"] + report["replaced"]] == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "The mill grinds oats."
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("name", ["tool.exe", "README", "archive.tar.gz", "notes.txt.sh", ".md"])
def test_an_upload_of_another_type_is_skipped_and_says_why(
    doc_service: ChatService, tmp_path: Path, name: str
) -> None:
    folder = doc_service.upload_dir("alice")
    report = doc_service.ingest("alice", [write(tmp_path, name, "The mill grinds barley.")])
    (skipped,) = report["skipped"]
    assert skipped["path"] == name
    assert skipped["reason"].startswith("unsupported type" if "." in name[1:] else "no extension")
    assert report["added"] == [] and report["files_seen"] == 1
    assert doc_service.document_list("alice") == []
    assert not folder.exists() or list(folder.iterdir()) == []
    assert "1 skipped" in ingest_summary(report) and name in ingest_summary(report)


def test_a_batch_with_files_of_another_type_takes_the_others(
    doc_service: ChatService, tmp_path: Path
) -> None:
    files = [
        write(tmp_path, "Mill.MD", MILL),  # the type, whatever its case
        write(tmp_path, "mill.docx", MILL),
        write(tmp_path, "tower.htm", f"<h1>Tower</h1><p>{TOWER}</p>"),
    ]
    report = doc_service.ingest("alice", files)
    assert sorted(Path(f["path"]).name for f in report["added"]) == ["Mill.MD", "tower.htm"]
    assert [p["path"] for p in report["skipped"]] == ["mill.docx"]
    assert report["files_seen"] == 3
    assert sorted(d["name"] for d in doc_service.document_list("alice")) == ["Mill.MD", "tower.htm"]


def test_an_upload_that_cannot_be_read_is_a_page_error(
    doc_service: ChatService, tmp_path: Path
) -> None:
    with pytest.raises(UiError, match=r"Cannot read the upload gone\.txt"):
        doc_service.ingest("alice", [tmp_path / "gone.txt"])


def write_bytes(folder: Path, name: str, data: bytes) -> Path:
    place = folder / uuid.uuid4().hex
    place.mkdir()
    (place / name).write_bytes(data)
    return place / name


def test_each_user_is_answered_from_their_own_collection(
    doc_service: ChatService, tmp_path: Path
) -> None:
    doc_service.ingest("alice", [write(tmp_path, "tower.md", TOWER)])
    question = "Who designed the Glass Tower of Wexmoor?"
    _, bob = run(doc_service, "bob", "b1", question)
    assert bob.diagnostics["retrieval"]["collection"] == user_collection("bob")
    assert bob.diagnostics["retrieval"]["status"] == "empty"
    assert bob.sources == []
    _, alice = run(doc_service, "alice", "a1", question)
    assert alice.diagnostics["retrieval"]["collection"] == user_collection("alice")
    assert [s["name"] for s in alice.sources] == ["tower.md"]


def test_shared_documents_put_everyone_in_the_configured_collection(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel, tmp_path: Path
) -> None:
    settings = make_settings(chroma={"shared": True, "collection": "team"})
    service = ChatService(settings, memory(settings), model=fake_model)
    assert service.collection_of("alice") == service.collection_of("bob") == "team"
    service.ingest("alice", [write(tmp_path, "tower.md", TOWER)])
    assert [d["name"] for d in service.document_list("bob")] == ["tower.md"]
    _, bob = run(service, "bob", "b1", "Who designed the Glass Tower of Wexmoor?")
    assert bob.diagnostics["retrieval"]["collection"] == "team"
    assert [s["name"] for s in bob.sources] == ["tower.md"]
    # Per user unless told.
    apart = make_settings(chroma={"collection": "team"})
    assert ChatService(apart, memory(apart)).collection_of("alice") == user_collection("alice")


def test_the_page_only_setting_for_shared_documents_is_a_clear_error(
    make_settings: Callable[..., Settings],
) -> None:
    # Taken as chroma.shared it would hand chroma.collection to every API caller and bot
    # chat too: the operator is told to say so, not shared with silently.
    with pytest.raises(SettingsError, match=r"ui.shared_documents is replaced by chroma.shared"):
        make_settings(ui={"shared_documents": True})
    assert not make_settings(ui={"shared_documents": False}).chroma.shared


def test_the_page_only_setting_is_refused_by_the_cli_without_a_traceback() -> None:
    done = assistant("threads", "list", ASSISTANT_UI__SHARED_DOCUMENTS="true")
    assert done.returncode != 0
    assert "chroma.shared" in done.stderr and "Traceback" not in done.stderr


def test_a_remove_from_the_page_names_the_file_by_key_never_by_path(
    doc_service: ChatService, tmp_path: Path
) -> None:
    from apps.ui.page import document_choices

    doc_service.ingest("alice", [write(tmp_path, "tower.md", TOWER)])
    (listed,) = doc_service.document_list("alice")
    choices = document_choices(doc_service, "alice")
    assert choices == [("tower.md (1 chunks)", listed["key"])]
    assert "/" not in listed["key"] and listed["key"] != listed["source"]
    # Another user's key is not theirs to remove; nor is a path.
    with pytest.raises(UiError, match="not in your collection"):
        doc_service.remove_listed("bob", listed["key"])
    with pytest.raises(UiError, match="not in your collection"):
        doc_service.remove_listed("alice", listed["source"])
    assert doc_service.remove_listed("alice", listed["key"]) == ("tower.md", 1)
    assert doc_service.document_list("alice") == []


def test_the_machines_user_keeps_the_clis_collection(doc_service: ChatService) -> None:
    # Like threads that name no owner: the CLI's user is the same person on the page.
    local = doc_service.default_owner
    assert doc_service.collection_of(local) == doc_service.settings.chroma.collection
    assert doc_service.collection_of("alice") != doc_service.settings.chroma.collection


@pytest.mark.parametrize("name", ["", "   ", "../x", "a/b"])
def test_documents_need_a_valid_user(doc_service: ChatService, name: str) -> None:
    with pytest.raises(UiError):
        doc_service.document_list(name)
    with pytest.raises(UiError):
        doc_service.ingest(name, [])


def _result(reply: str) -> TurnResult:
    return TurnResult(reply=reply, stopped=False, withdrawn=False, sources=[], diagnostics={})


def test_a_streamed_reply_updates_the_page_at_most_once_per_gap() -> None:
    from apps.ui.page import paced

    times = iter([0.0, 0.01, 0.02, 0.05, 0.07, 0.08, 0.2])
    chunks: list[str | TurnResult] = ["a", " b", " c", " d", " e", " f", " g"]
    out = list(paced([*chunks, _result("a b c d e f g")], gap=0.066, clock=lambda: next(times)))
    # The first text at once, then only when 0.066 s have passed since the last update.
    assert out[:-1] == ["a", "a b c d e", "a b c d e f g"]
    assert isinstance(out[-1], TurnResult) and out[-1].reply == "a b c d e f g"


def test_text_held_back_at_the_end_comes_with_the_result() -> None:
    from apps.ui.page import paced

    times = iter([0.0, 0.01, 0.02])
    chunks = ["one", " two", " three", _result("one two three")]
    out = list(paced(chunks, clock=lambda: next(times)))
    assert out[0] == "one" and out[-1] == _result("one two three")
    assert len(out) == 2  # " two three" came too soon: the result shows it


def test_a_blank_first_chunk_does_not_hold_back_the_first_words() -> None:
    from apps.ui.page import paced

    times = iter([0.0, 0.01, 0.02])
    out = list(paced(["\n", "Hello", " there"], clock=lambda: next(times)))
    assert out == ["\n", "\nHello"]  # the first visible text went out at once


def test_slow_tokens_each_update_the_page_and_nothing_is_repeated() -> None:
    from apps.ui.page import paced

    times = iter([0.0, 0.1, 0.2, 0.3])
    assert list(paced(["a", " b", "", " c"], clock=lambda: next(times))) == ["a", "a b", "a b c"]


def _html_app(body: list[bytes], kind: bytes = b"text/html; charset=utf-8") -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", kind), (b"content-length", str(sum(map(len, body))).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n, part in enumerate(body):
            await send({"type": "http.response.body", "body": part, "more_body": n < len(body) - 1})

    return app


def test_the_frame_script_comes_first_in_the_pages_head() -> None:
    from starlette.testclient import TestClient

    from apps.ui.page import FRAME_SCRIPT, FirstInHead

    page = [b"<html><head><title>x</title>", b"<script src=app.js></script></head><body>", b"hi"]
    client = TestClient(FirstInHead(_html_app(page)))
    response = client.get("/")
    assert response.text.startswith("<html><head>" + FRAME_SCRIPT + "<title>x</title>")
    assert response.text.endswith("<body>hi")
    assert response.headers["content-length"] == str(len(response.content))
    assert response.text.count("requestAnimationFrame = ") == 1


def test_what_is_not_a_page_passes_untouched() -> None:
    from starlette.testclient import TestClient

    from apps.ui.page import FirstInHead

    client = TestClient(FirstInHead(_html_app([b'{"head": "<head>"}'], b"application/json")))
    assert client.get("/config").content == b'{"head": "<head>"}'
    assert client.post("/").content == b'{"head": "<head>"}'
    script = TestClient(FirstInHead(_html_app([b"<head>"]), script="<s>"))
    assert script.post("/").content == b"<head>"  # only GET pages
    assert script.get("/").content == b"<head><s>"
    # An uploaded HTML file served back is the file as it was.
    assert script.get("/gradio_api/file=/tmp/report.html").content == b"<head>"


class FlakySaver(InMemorySaver):
    """An in-memory saver whose backend can go away, as Redis or a SQLite file can."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: Exception | None = None

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def get_tuple(self, config: Any) -> Any:
        self._check()
        return super().get_tuple(config)

    def list(self, config: Any, **kwargs: Any) -> Any:
        self._check()
        return super().list(config, **kwargs)

    def delete_thread(self, thread_id: str) -> None:
        self._check()
        super().delete_thread(thread_id)


@pytest.mark.parametrize("failure", STORE_DOWN, ids=lambda e: type(e).__name__)
def test_a_store_that_went_away_is_a_message_everywhere(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel, failure: Exception
) -> None:
    settings = make_settings()
    saver, store = FlakySaver(), FlakyStore()
    service = ChatService(settings, OpenMemory(saver, store, LocalThreadLocks()), model=fake_model)
    run(service, "alice", "a1", "hello")
    saver.failure = store.failure = failure
    calls: list[Callable[[], object]] = [
        lambda: service.threads("alice"),
        lambda: service.history("alice", "a1"),
        lambda: service.delete_thread("alice", "a1"),
        lambda: service.owner_of("a1"),
        lambda: run(service, "alice", "a1", "again"),
        lambda: run(service, "alice", "a2", "a new thread"),
        lambda: service.memories("alice"),
        lambda: service.forget("alice", ["k"]),
    ]
    for call in calls:
        with pytest.raises(UiError, match="memory store is unavailable") as caught:
            call()
        assert str(failure) in str(caught.value)
    saver.failure = store.failure = None  # back: nothing was lost
    assert [t.thread_id for t in service.threads("alice")] == ["a1"]
    assert service.history("alice", "a1")[0][0] == {"role": "user", "content": "hello"}
