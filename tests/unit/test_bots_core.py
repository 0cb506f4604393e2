"""What both bots share (apps/bots/core.py): commands, turns, busy replies, on the fake model."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver

from apps.bots.core import (
    BUSY_MODEL,
    BUSY_THREAD,
    EMPTY,
    FAILED,
    NOT_CHECKED,
    NOT_OURS,
    BotCore,
    ChatGuard,
    CheckFailed,
)
from apps.turns import thread_owner
from graph.settings import Settings
from tests.support.embeddings import word_store
from tools.memory import OpenMemory
from tools.memory.locks import LocalThreadLocks
from tools.models import FakeChatModel


def open_memory(settings: Settings, *, store: bool = True) -> OpenMemory:
    return OpenMemory(InMemorySaver(), word_store(settings) if store else None, LocalThreadLocks())


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def core(settings: Settings, fake_model: FakeChatModel) -> BotCore:
    return BotCore(settings, open_memory(settings), busy_wait=0, model=fake_model)


def history(core: BotCore, chat: str) -> list[str]:
    values = core.graph.get_state({"configurable": {"thread_id": chat}}).values
    return [m.text for m in values.get("messages") or []]


def test_a_message_gets_the_reply_and_each_chat_is_its_own_thread(core: BotCore) -> None:
    assert core.handle("telegram:1", "telegram:7", "hello there") == "Hello from the fake model."
    assert core.handle("telegram:1", "telegram:7", "and again") == "Hello from the fake model."
    assert core.handle("telegram:2", "telegram:8", "someone else") == "Hello from the fake model."
    assert history(core, "telegram:1")[::2] == ["hello there", "and again"]
    assert history(core, "telegram:2")[::2] == ["someone else"]


def test_reset_deletes_the_chats_history_only(core: BotCore) -> None:
    core.handle("telegram:1", "telegram:7", "remember this turn")
    core.handle("telegram:2", "telegram:7", "another chat")
    reply = core.handle("telegram:1", "telegram:7", "/reset")
    assert "history is deleted" in reply
    assert history(core, "telegram:1") == []
    assert history(core, "telegram:2")[0] == "another chat"
    core.handle("telegram:1", "telegram:7", "fresh start")
    assert history(core, "telegram:1")[0] == "fresh start"


def test_reset_without_memory_says_nothing_is_kept(settings: Settings) -> None:
    core = BotCore(
        settings, OpenMemory(None, None, LocalThreadLocks()), busy_wait=0, model=FakeChatModel()
    )
    assert "memory is off" in core.handle("telegram:1", "telegram:7", "/reset")


@pytest.mark.parametrize("level", ["strict", "relaxed", "moderate"])
def test_the_safety_level_is_per_chat_and_used_by_its_turns(core: BotCore, level: str) -> None:
    assert core.handle("slack:T:C1", "slack:T:U1", f"!safety {level.upper()}", "!") == (
        f"Safety level for this chat: {level}."
    )
    core.handle("slack:T:C1", "slack:T:U1", "hello", "!")
    core.handle("slack:T:C2", "slack:T:U1", "hello", "!")
    state = core.graph.get_state({"configurable": {"thread_id": "slack:T:C1"}}).values
    other = core.graph.get_state({"configurable": {"thread_id": "slack:T:C2"}}).values
    assert state["safety"]["level"] == level
    assert other["safety"]["level"] == "moderate"  # the configured default


@pytest.mark.parametrize("arg", ["", "loose", "STRICTER", "relaxed please", "🙂"])
def test_an_unknown_safety_level_gets_a_clear_reply(core: BotCore, arg: str) -> None:
    reply = core.handle("telegram:1", "telegram:7", f"/safety {arg}")
    assert "strict, moderate, relaxed" in reply
    assert "now moderate" in reply
    assert core.safety_level("telegram:1") == "moderate"


def test_the_level_outlives_the_core_when_there_is_a_store(settings: Settings) -> None:
    memory = open_memory(settings)
    BotCore(settings, memory, busy_wait=0, model=FakeChatModel()).handle(
        "telegram:5", "telegram:7", "/safety strict"
    )
    again = BotCore(settings, memory, busy_wait=0, model=FakeChatModel())
    assert again.safety_level("telegram:5") == "strict"
    assert again.safety_level("telegram:6") == "moderate"


def test_without_a_store_the_level_is_kept_in_the_process(settings: Settings) -> None:
    core = BotCore(settings, open_memory(settings, store=False), busy_wait=0, model=FakeChatModel())
    core.handle("telegram:5", "telegram:7", "/safety relaxed")
    assert core.safety_level("telegram:5") == "relaxed"
    assert core.safety_level("telegram:6") == "moderate"


@pytest.mark.parametrize(
    "text", ["/help", "/start", "/HELP", "/help@local_assistant_bot", "  ", "\u200b", "\x07\x1b"]
)
def test_help_lists_the_commands_and_the_level(core: BotCore, text: str) -> None:
    reply = core.handle("telegram:1", "telegram:7", text)
    for command in ("/reset", "/safety LEVEL", "/help"):
        assert command in reply
    assert "now moderate" in reply
    assert history(core, "telegram:1") == []  # no turn ran


def test_slack_prefix_commands(core: BotCore) -> None:
    assert "!reset" in core.handle("slack:T:C", "slack:T:U", "!help", "!")
    assert "Unknown command !frobnicate" in core.handle(
        "slack:T:C", "slack:T:U", "!frobnicate", "!"
    )


def test_an_unknown_command_is_named_but_a_path_is_a_message(core: BotCore) -> None:
    assert "Unknown command /frobnicate" in core.handle("telegram:1", "telegram:7", "/frobnicate")
    assert core.handle("telegram:1", "telegram:7", "/usr/bin is where?") == (
        "Hello from the fake model."
    )


def test_a_busy_thread_gets_a_polite_reply(core: BotCore) -> None:
    with core.memory.locks.hold("telegram:1", 0):
        assert core.handle("telegram:1", "telegram:7", "hello") == BUSY_THREAD
        assert core.handle("telegram:1", "telegram:7", "/reset") == BUSY_THREAD
    assert core.handle("telegram:1", "telegram:7", "hello") == "Hello from the fake model."


def test_a_busy_model_gets_a_polite_reply(settings: Settings) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(messages: list[BaseMessage]) -> str:
        started.set()
        release.wait(60)
        return "finally"

    core = BotCore(settings, open_memory(settings), busy_wait=0, model=FakeChatModel(reply=slow))
    replies: list[str] = []
    first = threading.Thread(target=lambda: replies.append(core.handle("telegram:1", "u", "a")))
    first.start()
    try:
        assert started.wait(60)
        assert core.handle("telegram:2", "telegram:8", "b") == BUSY_MODEL
    finally:
        release.set()
        first.join(60)
    assert replies == ["finally"]
    assert core.handle("telegram:2", "telegram:8", "b") == "finally"  # the model is free again


def test_a_failing_model_gets_an_apology_not_a_traceback(settings: Settings) -> None:
    def broken(messages: list[BaseMessage]) -> Any:
        raise RuntimeError("llama.cpp fell over")

    core = BotCore(settings, open_memory(settings), busy_wait=0, model=FakeChatModel(reply=broken))
    assert core.handle("telegram:1", "telegram:7", "hello") == FAILED


def test_a_too_long_message_is_refused_with_a_reason(core: BotCore) -> None:
    reply = core.handle("telegram:1", "telegram:7", "word " * 20000)
    assert "too long" in reply


@pytest.mark.parametrize("empty", ["", "   ", "\n\n"])
def test_an_empty_reply_is_said_not_sent_as_silence(settings: Settings, empty: str) -> None:
    core = BotCore(settings, open_memory(settings), busy_wait=0, model=FakeChatModel(reply=empty))
    assert core.handle("telegram:1", "telegram:7", "hello") == EMPTY


# --- who may change a shared chat ------------------------------------------------------------


class Guard:
    """A ChatGuard's check that answers ``answer`` (or raises it) and counts its calls."""

    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer
        self.calls = 0

    def allowed(self) -> bool:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def guard(self) -> ChatGuard:
        return ChatGuard(allowed=self.allowed, who="this group's administrators")


@pytest.mark.parametrize("command", ["/safety relaxed", "/safety STRICT", "/safety@Bot strict"])
def test_a_member_of_a_group_cannot_change_its_safety_level(core: BotCore, command: str) -> None:
    member = Guard(False)
    reply = core.handle("telegram:-5", "telegram:7", command, "/", member.guard())
    assert reply == (
        "Sorry, only this group's administrators can change the safety level "
        "(it stays moderate) in this chat."
    )
    assert member.calls == 1
    assert core.safety_level("telegram:-5") == "moderate"


def test_a_member_of_a_group_cannot_reset_it(core: BotCore) -> None:
    core.handle("telegram:-5", "telegram:7", "the group's first turn")
    member = Guard(False)
    reply = core.handle("telegram:-5", "telegram:8", "/reset", "/", member.guard())
    assert reply.startswith("Sorry, only this group's administrators can start this conversation")
    assert history(core, "telegram:-5")[0] == "the group's first turn"


@pytest.mark.parametrize("command", ["/safety relaxed", "/reset"])
def test_whom_the_guard_allows_changes_the_chat(core: BotCore, command: str) -> None:
    core.handle("telegram:-5", "telegram:7", "a turn")
    admin = Guard(True)
    reply = core.handle("telegram:-5", "telegram:9", command, "/", admin.guard())
    assert admin.calls == 1
    if command == "/reset":
        assert "history is deleted" in reply and history(core, "telegram:-5") == []
    else:
        assert reply == "Safety level for this chat: relaxed."
        assert core.safety_level("telegram:-5") == "relaxed"


@pytest.mark.parametrize("command", ["/safety", "/safety loose", "/help", "/start", "hello"])
def test_reading_the_level_and_talking_ask_no_permission(core: BotCore, command: str) -> None:
    core.handle("telegram:-5", "telegram:1", "/safety strict")  # no guard: a private chat
    member = Guard(False)
    reply = core.handle("telegram:-5", "telegram:7", command, "/", member.guard())
    assert member.calls == 0
    if command != "hello":
        assert "strict" in reply  # the level is shown to everyone
    assert core.safety_level("telegram:-5") == "strict"


def test_a_check_that_fails_refuses_the_change_saying_so(core: BotCore) -> None:
    broken = Guard(TimeoutError("the Bot API did not answer"))
    assert core.handle("telegram:-5", "telegram:7", "/safety relaxed", "/", broken.guard()) == (
        NOT_CHECKED
    )
    assert core.handle("telegram:-5", "telegram:7", "/reset", "/", broken.guard()) == NOT_CHECKED
    assert core.safety_level("telegram:-5") == "moderate"


@pytest.mark.parametrize(
    ("error", "again"),
    [
        (CheckFailed("Slack answered ratelimited to users.info", transient=True), True),
        (ConnectionResetError("reset by peer"), True),
        (CheckFailed("Slack answered user_not_found to users.info", transient=False), False),
        (KeyError("a bug in the adapter"), False),
    ],
)
def test_a_failed_check_says_whether_trying_again_can_help(
    core: BotCore, caplog: pytest.LogCaptureFixture, error: Exception, again: bool
) -> None:
    reply = core.handle("telegram:-5", "telegram:7", "/safety relaxed", "/", Guard(error).guard())
    assert (reply == NOT_CHECKED) is again
    if not again:
        assert reply.startswith("Sorry, I cannot check") and "will not help" in reply
    if isinstance(error, CheckFailed):  # the platform's answer: one line, no traceback
        assert error.reason in caplog.text
        assert not [r for r in caplog.records if r.exc_info]
    assert core.safety_level("telegram:-5") == "moderate"


def test_who_may_is_named_after_the_check(core: BotCore) -> None:
    learned: list[str] = []

    def allowed() -> bool:
        learned.append("the listed admins")  # what the check found out
        return False

    guard = ChatGuard(allowed=allowed, who=lambda: learned[-1] if learned else "everyone")
    reply = core.handle("telegram:-5", "telegram:7", "/reset", "/", guard)
    assert reply.startswith("Sorry, only the listed admins can start")


# --- whose thread: the room's, by the one owner rule of every front end -------------------

SECRET = "My bank PIN is 9931"


def owner_of(core: BotCore, thread: str) -> str | None:
    assert core.memory.saver is not None
    return thread_owner(core.memory.saver, thread, core.settings.long_term.user_id)


def write_as(core: BotCore, thread: str, owner: str | None, text: str = SECRET) -> None:
    """A thread written under a bot chat's id by someone else (owner None: a notebook)."""
    config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    if owner is not None:
        config["metadata"] = {"user_id": owner}
    core.graph.invoke({"messages": [("user", text)]}, config)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("thread", "room", "owner"),
    [
        ("telegram:1", None, "ada"),  # a CLI or API user named their thread like the chat
        ("telegram:1:5", "telegram:1", "ada"),  # a forum topic's id
        ("slack:T:C1:1700000000-1", "slack:T:C1", "slack:T:C1:1700000000-1"),  # not the room
        ("telegram:1", None, None),  # a notebook's thread: the machine user's
    ],
)
def test_a_chat_whose_thread_is_someone_elses_is_told_so_and_changes_nothing(
    core: BotCore,
    fake_model: FakeChatModel,
    thread: str,
    room: str | None,
    owner: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_as(core, thread, owner)
    before = history(core, thread)
    calls = len(fake_model.calls)
    with caplog.at_level("WARNING", logger="assistant.bots"):
        for text in ("what did I tell you earlier?", "/reset"):
            reply = core.handle(thread, "telegram:7", text, room=room)
            assert reply == NOT_OURS.format(thread=thread) and reply != FAILED
            assert owner is None or owner not in reply.replace(thread, "")  # the owner unnamed
    assert history(core, thread) == before  # neither continued nor deleted
    assert len(fake_model.calls) == calls and SECRET not in str(fake_model.calls[calls:])
    assert owner_of(core, thread) == (owner or core.settings.long_term.user_id)
    assert f"thread {thread} belongs to another user" in caplog.text


@pytest.mark.parametrize(
    ("thread", "room"),
    [
        ("telegram:1", None),
        ("telegram:1:5", "telegram:1"),
        ("slack:T:C1", "slack:T:C1"),
        ("slack:T:C1:1700000000-1", "slack:T:C1"),
    ],
)
def test_the_room_owns_its_threads_and_every_member_continues_and_resets_them(
    core: BotCore, thread: str, room: str | None
) -> None:
    assert core.handle(thread, "u:7", "hello", room=room) == "Hello from the fake model."
    assert core.handle(thread, "u:8", "me too", room=room) == "Hello from the fake model."
    assert history(core, thread)[::2] == ["hello", "me too"]
    assert owner_of(core, thread) == (room or thread)  # as collection_of(room) owns the documents
    assert "history is deleted" in core.handle(thread, "u:8", "/reset", room=room)
    assert history(core, thread) == [] and owner_of(core, thread) is None


def test_reset_of_a_chat_with_no_history_yet_starts_over(core: BotCore) -> None:
    assert "history is deleted" in core.handle("telegram:3", "telegram:7", "/reset")
    assert core.handle("telegram:3", "telegram:7", "hi") == "Hello from the fake model."


# --- whose memories a reply may recall -------------------------------------------------------


def test_a_group_reply_recalls_no_members_private_memories(
    settings: Settings, fake_model: FakeChatModel
) -> None:
    from tools.memory.long_term import list_memories, remember_turn

    memory = open_memory(settings)
    core = BotCore(settings, memory, busy_wait=0, model=fake_model)
    assert memory.store is not None
    # What ada told the bot privately (kept under her sender id).
    remember_turn(memory.store, "telegram:7", message="I am Ada, my PIN is 5521.",
                  reply="ok", thread_id="telegram:7", message_id="m1")  # fmt: skip
    group = Guard(answer=False).guard()
    for chat, text in (("telegram:-100", "hello all"), ("telegram:-100", "What is my PIN?"),
                       ("slack:T1:C1", "Which PIN did I give you?")):  # fmt: skip
        assert core.handle(chat, "telegram:7", text, guard=group)
        prompt = "\n".join(m.text for m in fake_model.calls[-1])
        assert "5521" not in prompt and "Ada" not in prompt, (chat, prompt)
    # What she says in the group is still hers, recalled in her private chat only.
    core.handle("telegram:-100", "telegram:7", "My locker code is 4817.", guard=group)
    kept = [m.text for m in list_memories(memory.store, "telegram:7", kinds=("facts",))]
    assert "My locker code is 4817." in kept
    # (In that group's thread everyone saw it; another group's reply never recalls it.)
    core.handle("telegram:-200", "telegram:7", "What is my locker code?", guard=group)
    assert "4817" not in "\n".join(m.text for m in fake_model.calls[-1])
    # Her private chat (no guard) recalls her memories as before.
    core.handle("telegram:7", "telegram:7", "Which PIN did I give you?")
    private = "\n".join(m.text for m in fake_model.calls[-1])
    assert "5521" in private and "4817" in private
