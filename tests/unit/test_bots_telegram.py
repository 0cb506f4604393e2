"""The Telegram bot (apps/bots/telegram.py) against a local stand-in of the Bot API."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver
from starlette.testclient import TestClient

from apps.bots.core import BUSY_MODEL, NOT_CHECKED, BotConfigError, BotCore
from apps.bots.split import utf16_units
from apps.bots.telegram import NOT_TEXT, SECRET_HEADER, create_app, incoming_text
from apps.documents import collection_of, user_collection
from graph.settings import Settings
from tests.support.documents import MILL, MILL_QUESTION, TOWER, TOWER_QUESTION, put_document
from tests.support.fake_telegram import ANONYMOUS_ADMIN, BOT_USER, FakeTelegram, update
from tests.support.http_server import ServerThread, wait_for
from tools.memory import OpenMemory
from tools.memory.locks import LocalThreadLocks
from tools.models import FakeChatModel

TOKEN = "123456:TEST-token_abc"
BOT_NAME = str(BOT_USER["username"])
SECRET = "s3cret-Webhook_token"


pytestmark = pytest.mark.usefixtures("nothing_leaves_this_machine")


@pytest.fixture
def telegram() -> Iterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram(TOKEN)
    with ServerThread(fake.app) as url:
        yield fake, url


def bot_settings(make_settings: Callable[..., Settings], api: str, **telegram: object) -> Settings:
    return make_settings(
        telegram={
            "token": TOKEN,
            "webhook_secret": SECRET,
            "api_base_url": f"{api}/bot",
            **telegram,
        }
    )


def bot(settings: Settings, model: FakeChatModel) -> TestClient:
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    core = BotCore(settings, memory, busy_wait=5, model=model)
    return TestClient(create_app(settings, core))


def to_bot(text: str) -> str:
    """A group message addressed to the bot (in a group it answers only those)."""
    return f"@{BOT_NAME} {text}"


def post(client: TestClient, payload: dict[str, object], secret: str | None = SECRET) -> int:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return client.post("/telegram", json=payload, headers=headers).status_code


def test_a_message_in_the_reply_out(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    with bot(bot_settings(make_settings, url), fake_model) as client:
        assert fake.methods() == ["getMe"]  # checked the token at start-up
        assert post(client, update(1, 1001, 77, "hello bot")) == 200
        assert wait_for(lambda: fake.sent(1001), what="the reply") == ["Hello from the fake model."]
        assert "sendChatAction" in fake.methods()
        assert post(client, update(2, 1001, 77, "/safety strict")) == 200
        wait_for(lambda: len(fake.sent(1001)) == 2, what="the command's reply")
        assert fake.sent(1001)[1] == "Safety level for this chat: strict."
    # The user's message reached the model as the last human turn of the chat's thread.
    assert fake_model.calls and fake_model.calls[-1][-1].text == "hello bot"


@pytest.mark.parametrize(
    "secret", [None, "", "wrong-secret", SECRET + "x", SECRET[:-1], SECRET.upper()]
)
def test_a_forged_update_is_refused_and_never_answered(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
    secret: str | None,
) -> None:
    fake, url = telegram
    with bot(bot_settings(make_settings, url), fake_model) as client:
        assert post(client, update(1, 1001, 77, "forged hello"), secret) == 403
        # A genuine update after it is answered: the forged one never reached the queue.
        assert post(client, update(2, 1001, 77, "real hello")) == 200
        wait_for(lambda: fake.sent(1001), what="the real reply")
    assert fake.sent() == ["Hello from the fake model."]
    assert [call[-1].text for call in fake_model.calls] == ["real hello"]


def test_a_long_reply_is_split_at_telegrams_limit(
    make_settings: Callable[..., Settings], telegram: tuple[FakeTelegram, str]
) -> None:
    fake, url = telegram
    paragraph = "Ein Satz mit Emoji 😀 und 日本語のテキスト. " * 40
    long_reply = "\n\n".join([paragraph] * 6)
    model = FakeChatModel(reply=lambda messages: long_reply)
    settings = make_settings(
        model={"n_ctx": 16384},
        generation={"max_new_tokens": 8192},
        telegram={"token": TOKEN, "webhook_secret": SECRET, "api_base_url": f"{url}/bot"},
    )
    with bot(settings, model) as client:
        assert post(client, update(1, 5, 5, "write a lot")) == 200
        # One sendMessage per piece, in order, once the turn has ended.
        wait_for(
            lambda: "".join(fake.sent(5)).count("😀") == long_reply.count("😀"),
            what="every piece",
        )
    pieces = fake.sent(5)
    assert len(pieces) > 1
    assert all(utf16_units(piece) <= 4096 for piece in pieces)
    assert " ".join(pieces).split() == long_reply.split()


def test_a_message_that_is_not_an_update_is_a_bad_request(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    with bot(bot_settings(make_settings, url), fake_model) as client:
        headers = {SECRET_HEADER: SECRET}
        assert client.post("/telegram", content=b"not json", headers=headers).status_code == 400
        assert client.get("/telegram").status_code == 405
        assert client.get("/healthz").text == "ok"
    assert fake.sent() == []


@pytest.mark.parametrize(
    ("telegram", "missing"),
    [
        ({"webhook_secret": SECRET}, "telegram.token"),
        ({"token": TOKEN}, "telegram.webhook_secret"),
        ({"token": "", "webhook_secret": SECRET}, "telegram.token"),
    ],
)
def test_a_missing_token_or_secret_is_named(
    make_settings: Callable[..., Settings], telegram: dict[str, str], missing: str
) -> None:
    settings = make_settings(telegram=telegram)
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    core = BotCore(settings, memory, busy_wait=0, model=FakeChatModel())
    with pytest.raises(BotConfigError, match=missing):
        create_app(settings, core)


def test_a_webhook_secret_telegram_would_refuse_is_a_settings_error(
    make_settings: Callable[..., Settings],
) -> None:
    from graph.settings import SettingsError

    with pytest.raises(SettingsError, match="webhook_secret"):
        make_settings(telegram={"webhook_secret": "has spaces and ünïcode"})


def test_public_url_registers_the_webhook_with_its_secret(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    settings = bot_settings(make_settings, url)
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    core = BotCore(settings, memory, busy_wait=0, model=fake_model)
    with TestClient(create_app(settings, core, public_url="https://bot.example.org/")):
        pass
    (params,) = [p for m, p in fake.calls if m == "setWebhook"]
    assert params["url"] == "https://bot.example.org/telegram"
    assert params["secret_token"] == SECRET


def test_an_edited_message_is_not_answered_again(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    with bot(bot_settings(make_settings, url), fake_model) as client:
        edited = update(1, 1001, 77, "hello, edited")
        edited["edited_message"] = edited.pop("message")
        assert post(client, edited) == 200
        assert post(client, update(2, 1001, 77, "new question")) == 200
        wait_for(lambda: fake.sent(1001), what="the reply")
    assert fake.sent() == ["Hello from the fake model."]
    assert [call[-1].text for call in fake_model.calls] == ["new question"]


def test_a_busy_model_gets_a_busy_reply_not_silence(
    make_settings: Callable[..., Settings], telegram: tuple[FakeTelegram, str]
) -> None:
    fake, url = telegram
    started, release = threading.Event(), threading.Event()

    def slow(messages: list[BaseMessage]) -> str:
        started.set()
        release.wait(60)
        return "the slow answer"

    settings = bot_settings(make_settings, url)
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    core = BotCore(settings, memory, busy_wait=0, model=FakeChatModel(reply=slow))
    with TestClient(create_app(settings, core)) as client:
        try:
            assert post(client, update(1, 1, 1, "a long job")) == 200
            assert started.wait(60)
            assert post(client, update(2, 2, 2, "meanwhile")) == 200
            assert wait_for(lambda: fake.sent(2), what="the busy reply") == [BUSY_MODEL]
        finally:
            release.set()
        assert wait_for(lambda: fake.sent(1), what="the slow reply") == ["the slow answer"]


def test_a_forum_topic_is_its_own_thread_and_answered_in_the_topic(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    settings = bot_settings(make_settings, url)
    memory = OpenMemory(InMemorySaver(), None, LocalThreadLocks())
    core = BotCore(settings, memory, busy_wait=5, model=fake_model)
    with TestClient(create_app(settings, core)) as client:
        assert post(client, update(1, -100500, 7, to_bot("in topic 12"), topic=12)) == 200
        wait_for(lambda: fake.sent(-100500), what="the topic's reply")
        assert post(client, update(2, -100500, 7, to_bot("in the general chat"))) == 200
        wait_for(lambda: len(fake.sent(-100500)) == 2, what="the chat's reply")
    params = fake.sent_params()
    assert params[0]["message_thread_id"] == "12"
    assert "message_thread_id" not in params[1]

    def first_message(thread: str) -> str:
        values = core.graph.get_state({"configurable": {"thread_id": thread}}).values
        return str(values["messages"][0].text)

    assert first_message("telegram:-100500:12") == "in topic 12"
    assert first_message("telegram:-100500") == "in the general chat"


def test_a_redelivered_update_is_answered_once(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    with bot(bot_settings(make_settings, url), fake_model) as client:
        for _ in range(3):
            assert post(client, update(7, 1001, 77, "once please")) == 200
        assert post(client, update(8, 1001, 77, "second question")) == 200
        wait_for(lambda: len(fake.sent(1001)) == 2, what="two replies")
    # The two run concurrently: either may reach the model first.
    assert sorted(call[-1].text for call in fake_model.calls) == ["once please", "second question"]


def test_a_command_for_another_bot_in_the_group_is_left_to_it(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    fake.admins.add((-100, 77))  # may change the group (see the tests below)
    with bot(bot_settings(make_settings, url), fake_model) as client:
        for number, text in enumerate(
            ["/reset@OtherBot", "/help@other_bot please", "/safety@X relaxed"]
        ):
            assert post(client, update(number + 1, -100, 77, text)) == 200
        # Then one addressed to this bot (any case), which is answered.
        assert post(client, update(9, -100, 77, "/safety@Local_Assistant_Test_Bot strict")) == 200
        wait_for(lambda: fake.sent(-100), what="the command's reply")
    assert fake.sent(-100) == ["Safety level for this chat: strict."]


@pytest.mark.parametrize(
    ("text", "elsewhere"),
    [
        ("/reset@OtherBot", True),
        (" /reset@OtherBot", True),  # the bot strips the text before reading commands
        ("/reset@my_bot", False),
        ("/RESET@MY_BOT", False),
        ("/reset", False),
        ("hello @OtherBot", False),
        ("/home/me@host is a folder?", False),
        ("", False),
    ],
)
def test_which_commands_are_for_another_bot(text: str, elsewhere: bool) -> None:
    from apps.bots.telegram import addressed_elsewhere

    assert addressed_elsewhere(text, "my_bot") is elsewhere


# --- who may change a group --------------------------------------------------------------------

GROUP = -100777
REFUSED = (
    "Sorry, only this group's administrators can change the safety level (it stays "
    "moderate) in this chat."
)


def member_checks(fake: FakeTelegram) -> list[tuple[int, int]]:
    return [
        (int(params["chat_id"]), int(params["user_id"]))
        for method, params in fake.calls
        if method == "getChatMember"
    ]


def group_bot(
    make_settings: Callable[..., Settings], url: str, fake_model: FakeChatModel
) -> tuple[TestClient, BotCore]:
    settings = bot_settings(make_settings, url)
    core = BotCore(
        settings,
        OpenMemory(InMemorySaver(), None, LocalThreadLocks()),
        busy_wait=5,
        model=fake_model,
    )
    return TestClient(create_app(settings, core)), core


def test_in_a_group_only_administrators_change_the_safety_level(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    fake.owners.add((GROUP, 1))
    fake.admins.add((GROUP, 2))
    fake.admins.add((-999, 3))  # an administrator of another group only
    client, core = group_bot(make_settings, url, fake_model)
    steps = [
        (3, "/safety relaxed", REFUSED, "moderate"),
        (4, "/safety relaxed", REFUSED, "moderate"),
        (2, "/safety strict", "Safety level for this chat: strict.", "strict"),
        (4, "/safety", "(now strict)", "strict"),  # reading it is open to all
        (1, "/safety relaxed", "Safety level for this chat: relaxed.", "relaxed"),
    ]
    with client:
        for number, (sender, text, expected, level) in enumerate(steps, start=1):
            assert post(client, update(number, GROUP, sender, text)) == 200
            wait_for(lambda n=number: len(fake.sent(GROUP)) == n, what=f"the reply to {text}")
            assert expected in fake.sent(GROUP)[-1]
            assert core.safety_level(f"telegram:{GROUP}") == level
    # Asked only for the changes, each for its sender in this group.
    assert member_checks(fake) == [(GROUP, 3), (GROUP, 4), (GROUP, 2), (GROUP, 1)]


def test_in_a_group_a_member_cannot_reset_it_but_an_anonymous_administrator_can(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    client, core = group_bot(make_settings, url, fake_model)
    thread = f"telegram:{GROUP}"
    with client:
        assert post(client, update(1, GROUP, 5, to_bot("a question for the group"))) == 200
        wait_for(lambda: len(fake.sent(GROUP)) == 1, what="the answer")
        assert post(client, update(2, GROUP, 5, "/reset")) == 200
        wait_for(lambda: len(fake.sent(GROUP)) == 2, what="the refusal")
        assert "only this group's administrators" in fake.sent(GROUP)[-1]
        assert core.graph.get_state({"configurable": {"thread_id": thread}}).values["messages"]
        # Someone who writes as the group is an administrator: Telegram allows no one else.
        assert post(client, update(3, GROUP, ANONYMOUS_ADMIN, "/reset", as_chat=GROUP)) == 200
        wait_for(lambda: len(fake.sent(GROUP)) == 3, what="the reset")
        assert "history is deleted" in fake.sent(GROUP)[-1]
        # ...but writing as another chat (a linked channel) is not writing as this group.
        assert post(client, update(4, GROUP, 136817688, "/safety relaxed", as_chat=-42)) == 200
        wait_for(lambda: len(fake.sent(GROUP)) == 4, what="the refusal")
        assert fake.sent(GROUP)[-1] == REFUSED
    assert member_checks(fake) == [(GROUP, 5), (GROUP, 136817688)]


def test_in_a_private_chat_the_user_changes_it_without_asking_telegram(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    client, _ = group_bot(make_settings, url, fake_model)
    with client:
        assert post(client, update(1, 4242, 4242, "/safety relaxed")) == 200
        assert post(client, update(2, 4243, 4243, "/reset")) == 200
        wait_for(lambda: fake.sent(4242) and fake.sent(4243), what="both replies")
    assert fake.sent(4242) == ["Safety level for this chat: relaxed."]
    assert member_checks(fake) == []


def test_when_telegram_cannot_say_who_administers_the_group_nothing_changes(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    fake.admins.add((GROUP, 2))
    fake.member_error = "Bad Request: member list is inaccessible"
    client, core = group_bot(make_settings, url, fake_model)
    with client:
        assert post(client, update(1, GROUP, 2, "/safety relaxed")) == 200
        wait_for(lambda: fake.sent(GROUP), what="the reply")
    # Asking again would get the same answer: the reply does not say to try again.
    (reply,) = fake.sent(GROUP)
    assert reply.startswith("Sorry, I cannot check whether you may change")
    assert "member list is inaccessible" in reply.lower() and "trying again will not help" in reply
    assert reply != NOT_CHECKED
    assert core.safety_level(f"telegram:{GROUP}") == "moderate"


def _prompts(model: FakeChatModel) -> str:
    """Everything the model was shown (retrieved passages are in the prompt)."""
    return "\n".join(m.text for call in model.calls for m in call)


def test_a_chat_is_answered_from_its_own_documents_never_a_users(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
    tmp_path: Path,
) -> None:
    fake, url = telegram
    settings = bot_settings(make_settings, url)
    # The machine user's documents (chroma.collection), the sender's own collection (the
    # name the page and API would give "telegram:77"), and a page user's.
    put_document(settings, settings.chroma.collection, tmp_path, "mill.md", MILL)
    put_document(settings, collection_of(settings, "telegram:77"), tmp_path, "tower.md", TOWER)
    put_document(settings, user_collection("alice"), tmp_path, "tower2.md", TOWER)
    with bot(settings, fake_model) as client:
        for n, (chat, question) in enumerate(
            [(-100500, TOWER_QUESTION), (-100500, MILL_QUESTION), (77, MILL_QUESTION)], 1
        ):
            assert post(client, update(n, chat, 77, to_bot(question))) == 200
            wait_for(lambda n=n: len(fake.sent()) == n, what="the reply")
        prompts = _prompts(fake_model)
        assert TOWER_QUESTION in prompts and MILL_QUESTION in prompts
        assert "Ida Frane" not in prompts and "barley" not in prompts
        # The group's own documents are its members' answers, in every topic of it.
        put_document(
            settings, collection_of(settings, "telegram:-100500"), tmp_path, "mill.md", MILL
        )
        assert post(client, update(4, -100500, 78, to_bot(MILL_QUESTION), topic=12)) == 200
        wait_for(lambda: len(fake.sent()) == 4, what="the topic's reply")
        assert "barley" in _prompts(fake_model)


def test_with_shared_documents_every_chat_is_answered_from_chroma_collection(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
    tmp_path: Path,
) -> None:
    fake, url = telegram
    telegram_keys = bot_settings(make_settings, url).telegram.model_dump()
    settings = make_settings(telegram=telegram_keys, chroma={"shared": True})
    put_document(settings, settings.chroma.collection, tmp_path, "mill.md", MILL)
    with bot(settings, fake_model) as client:
        assert post(client, update(1, -100500, 77, to_bot(MILL_QUESTION))) == 200
        wait_for(lambda: fake.sent(-100500), what="the reply")
    assert "barley" in _prompts(fake_model)


FLOOD = (429, "Too Many Requests: retry after 0", {"retry_after": 0})
BAD_GATEWAY = (502, "Bad Gateway", {})
BLOCKED = (403, "Forbidden: bot was blocked by the user", {})


def long_bot(make_settings: Callable[..., Settings], url: str) -> TestClient:
    """A bot whose every reply is three pieces: "one", "two" and "three" paragraphs."""
    reply = "\n\n".join(word * 1000 for word in ("one ", "two ", "six "))
    settings = make_settings(
        model={"n_ctx": 16384},
        generation={"max_new_tokens": 8192},
        telegram={"token": TOKEN, "webhook_secret": SECRET, "api_base_url": f"{url}/bot"},
    )
    return bot(settings, FakeChatModel(reply=lambda messages: reply))


@pytest.mark.parametrize(
    "errors",
    [
        [FLOOD],  # a group's flood limit, reached by a long reply's pieces
        [FLOOD, FLOOD, FLOOD],
        [BAD_GATEWAY],
        [BAD_GATEWAY, FLOOD],
    ],
)
def test_a_piece_telegram_could_not_take_is_sent_again_and_nothing_is_lost(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    errors: list[tuple[int, str, dict[str, object]]],
) -> None:
    fake, url = telegram
    with long_bot(make_settings, url) as client:
        fake.send_errors.extend(errors)
        assert post(client, update(1, -5, 5, to_bot("write a lot"))) == 200
        wait_for(lambda: len(fake.sent(-5)) == 3, what="every piece")
        assert fake.methods().count("sendMessage:failed") == len(errors)
    # In order, each once.
    assert [piece.split()[0] for piece in fake.sent(-5)] == ["one", "two", "six"]


def test_a_bot_blocked_by_the_user_gives_the_reply_up_at_once_and_says_so(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = telegram
    with long_bot(make_settings, url) as client:
        fake.send_errors.append(BLOCKED)
        assert post(client, update(1, 5, 5, "write a lot")) == 200
        wait_for(lambda: "not delivered" in caplog.text, what="the log line")
        # The next message is answered as usual: one failed reply stops nothing.
        assert post(client, update(2, 5, 5, "again")) == 200
        wait_for(lambda: len(fake.sent(5)) == 3, what="the next reply")
    # Asked once, not again and again; no later piece sent out of a reply with a hole.
    assert fake.methods().count("sendMessage:failed") == 1
    assert "piece 1 of 3" in caplog.text and "3 piece(s) not sent" in caplog.text


def test_a_flood_limit_that_never_lifts_gives_the_rest_of_the_reply_up(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = telegram
    with long_bot(make_settings, url) as client:
        fake.send_errors.extend([FLOOD] * 10)
        assert post(client, update(1, -5, 5, to_bot("write a lot"))) == 200
        wait_for(lambda: "not delivered" in caplog.text, what="the log line")
    assert fake.methods().count("sendMessage:failed") == 4  # SEND_ATTEMPTS
    assert fake.sent(-5) == []


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        (f"@{BOT_NAME} ELI5 DNS", "ELI5 DNS"),
        (f"@{BOT_NAME.upper()}, what is DNS?", "what is DNS?"),  # usernames ignore case
        (f"@{BOT_NAME}: what is DNS?", "what is DNS?"),
        (f"@{BOT_NAME} /reset", "/reset"),
        (f"@{BOT_NAME}", ""),
        (f"@{BOT_NAME}\nline one\n  indented", "line one\n  indented"),
        # Not the bot: another name, a longer one, an e-mail address, a command's suffix.
        (f"ask @{BOT_NAME}_two instead", f"ask @{BOT_NAME}_two instead"),
        ("@someone_else what is DNS?", "@someone_else what is DNS?"),
        (f"mail ada@{BOT_NAME} now", f"mail ada@{BOT_NAME} now"),
        (f"/reset@{BOT_NAME}", f"/reset@{BOT_NAME}"),
    ],
)
def test_the_bots_own_mention_is_taken_out_of_the_question(typed: str, read: str) -> None:
    assert incoming_text(typed, BOT_NAME) == read


def test_a_mention_in_a_group_reaches_the_model_as_the_question_alone(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    with bot(bot_settings(make_settings, url), fake_model) as client:
        assert post(client, update(1, -7, 7, f"@{BOT_NAME} what is a mill?")) == 200
        wait_for(lambda: fake.sent(-7), what="the reply")
        assert post(client, update(2, -7, 7, f"@{BOT_NAME} /safety")) == 200
        wait_for(lambda: len(fake.sent(-7)) == 2, what="the command's reply")
    assert fake_model.calls[-1][-1].text == "what is a mill?"
    assert "Name a safety level" in fake.sent(-7)[1]  # a command, not a question


def not_text(update_id: int, chat_id: int, **content: object) -> dict[str, object]:
    message = update(update_id, chat_id, 9, "x")
    del message["message"]["text"]  # type: ignore[attr-defined]
    message["message"].update(content)  # type: ignore[attr-defined]
    return message


PHOTO = [{"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]
STICKER = {
    "file_id": "s1",
    "file_unique_id": "u2",
    "type": "regular",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
}


@pytest.mark.parametrize(
    "content",
    [
        {"photo": PHOTO, "caption": "what is in this picture?"},
        {"voice": {"file_id": "v1", "file_unique_id": "u3", "duration": 3}},
        {"sticker": STICKER},
        {"document": {"file_id": "d1", "file_unique_id": "u4", "file_name": "notes.pdf"}},
    ],
)
def test_what_is_not_text_gets_a_reply_in_a_private_chat_and_none_in_a_group(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
    content: dict[str, object],
) -> None:
    fake, url = telegram
    with bot(bot_settings(make_settings, url), fake_model) as client:
        assert post(client, not_text(1, -8, **content)) == 200  # a group: for its members
        assert post(client, not_text(2, 8, **content)) == 200
        wait_for(lambda: fake.sent(8), what="the reply")
        assert post(client, update(3, -8, 9, "/help")) == 200  # after the group's update
        wait_for(lambda: fake.sent(-8), what="the group's reply to /help")
    assert fake.sent(8) == [NOT_TEXT]
    assert len(fake.sent(-8)) == 1 and "Commands" in fake.sent(-8)[0]
    assert fake_model.calls == []


def reply_to(update_payload: dict[str, Any], sender: dict[str, Any]) -> dict[str, Any]:
    message = update_payload["message"]
    message["reply_to_message"] = {
        "message_id": 1,
        "date": message["date"],
        "chat": message["chat"],
        "from": sender,
        "text": "an earlier message",
    }
    return update_payload


def test_in_a_group_only_what_is_addressed_to_the_bot_is_answered(
    make_settings: Callable[..., Settings],
    telegram: tuple[FakeTelegram, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = telegram
    member = {"id": 6, "is_bot": False, "first_name": "Bo"}
    with bot(bot_settings(make_settings, url), fake_model) as client:
        # The members' own talk, as a bot sees it with privacy mode off or as an admin.
        for n, chatter in enumerate(
            [
                update(1, -9, 5, "lunch at noon?"),
                update(2, -9, 5, f"ask @{BOT_NAME}_two"),
                reply_to(update(3, -9, 5, "yes, noon"), member),
            ]
        ):
            assert post(client, chatter) == 200, n
        for addressed in (
            update(4, -9, 5, to_bot("first question")),
            reply_to(update(5, -9, 5, "second question"), BOT_USER),  # a reply to the bot
            update(6, -9, 5, "/help"),
        ):
            count = len(fake.sent(-9))
            assert post(client, addressed) == 200
            wait_for(lambda count=count: len(fake.sent(-9)) == count + 1, what="the reply")
        # A private chat needs no mention.
        assert post(client, update(7, 9, 9, "third question")) == 200
        wait_for(lambda: fake.sent(9), what="the private reply")
    asked = [call[-1].text for call in fake_model.calls]
    assert asked == ["first question", "second question", "third question"]
