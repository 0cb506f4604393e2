"""The Slack bot (apps/bots/slack.py) against a local stand-in of Slack's Web API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from starlette.testclient import TestClient

from apps.bots.core import NOT_CHECKED, NOT_TEXT, BotConfigError, BotCore
from apps.bots.slack import chat_key, create_app, escape, incoming_text
from apps.documents import collection_of
from graph.settings import Settings
from tests.support.documents import MILL, MILL_QUESTION, TOWER, TOWER_QUESTION, put_document
from tests.support.fake_slack import (
    BOT_USER,
    TEAM,
    FakeSlack,
    command_body,
    direct_message,
    event_body,
    mention,
    signed,
)
from tests.support.http_server import ServerThread, wait_for
from tools.memory import OpenMemory
from tools.memory.locks import LocalThreadLocks
from tools.models import FakeChatModel

TOKEN = "xoxb-test-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


pytestmark = pytest.mark.usefixtures("nothing_leaves_this_machine")


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, str]]:
    fake = FakeSlack(TOKEN)
    with ServerThread(fake.app) as url:
        yield fake, url


def bot(
    make_settings: Callable[..., Settings],
    api: str,
    chat_model: FakeChatModel,
    admins: tuple[str, ...] = (),
    **overrides: Any,
) -> tuple[TestClient, BotCore]:
    settings = make_settings(
        slack={
            "bot_token": TOKEN,
            "signing_secret": SECRET,
            "api_base_url": f"{api}/api/",
            "admins": list(admins),
        },
        **overrides,
    )
    core = BotCore(
        settings,
        OpenMemory(InMemorySaver(), None, LocalThreadLocks()),
        busy_wait=5,
        model=chat_model,
    )
    return TestClient(create_app(settings, core)), core


class SlackBot(NamedTuple):
    """A bot on the fake Slack, with the fake model: what most tests here start from."""

    slack: FakeSlack
    client: TestClient
    core: BotCore


@pytest.fixture
def slack_bot(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
) -> SlackBot:
    fake, url = slack
    return SlackBot(fake, *bot(make_settings, url, fake_model))


def send_event(client: TestClient, event: dict[str, Any], **sign: Any) -> int:
    body = event_body(event)
    headers = signed(sign.pop("secret", SECRET), body, content_type=JSON, **sign)
    return client.post("/slack/events", content=body, headers=headers).status_code


def history(core: BotCore, thread: str) -> list[str]:
    values = core.graph.get_state({"configurable": {"thread_id": thread}}).values
    return [m.text for m in values.get("messages") or []]


def test_a_mention_in_a_channel_is_answered_there(slack_bot: SlackBot) -> None:
    fake, client, core = slack_bot
    assert send_event(client, mention("C1", "U1", "hello &amp; &lt;welcome&gt;")) == 200
    (posted,) = wait_for(lambda: fake.posted("C1"), what="the reply")
    assert posted["text"] == "Hello from the fake model."
    assert posted.get("thread_ts") is None
    # The model saw the message as typed: no mention, Slack's escapes undone.
    assert history(core, chat_key(TEAM, "C1"))[0] == "hello & <welcome>"


def test_a_mention_in_a_slack_thread_has_its_own_assistant_thread(slack_bot: SlackBot) -> None:
    fake, client, core = slack_bot
    send_event(client, mention("C1", "U1", "in the channel"))
    wait_for(lambda: fake.posted("C1"))
    send_event(client, mention("C1", "U2", "in a thread", thread_ts="1700000000.000100"))
    wait_for(lambda: len(fake.posted("C1")) == 2)
    assert fake.posted("C1")[1]["thread_ts"] == "1700000000.000100"
    assert history(core, chat_key(TEAM, "C1"))[::2] == ["in the channel"]
    threaded = chat_key(TEAM, "C1", "1700000000.000100")
    assert threaded == f"slack:{TEAM}:C1:1700000000-000100"
    assert history(core, threaded)[::2] == ["in a thread"]


def test_direct_messages_are_answered_but_edits_and_bots_are_not(
    slack_bot: SlackBot,
    fake_model: FakeChatModel,
) -> None:
    fake, client, _ = slack_bot
    for ignored in (
        direct_message("D1", "U1", "edited", subtype="message_changed"),
        direct_message("D1", "U9", "from a bot", bot_id="B9"),
        {**direct_message("C5", "U1", "plain channel chatter"), "channel_type": "channel"},
    ):
        assert send_event(client, ignored) == 200
    assert send_event(client, direct_message("D1", "U1", "!safety relaxed")) == 200
    wait_for(lambda: fake.posted("D1"), what="the command's reply")
    assert send_event(client, direct_message("D1", "U1", "a real question")) == 200
    wait_for(lambda: len(fake.posted("D1")) == 2, what="the answer")
    texts = [p["text"] for p in fake.posted()]
    assert texts == ["Safety level for this chat: relaxed.", "Hello from the fake model."]
    assert [call[-1].text for call in fake_model.calls] == ["a real question"]


@pytest.mark.parametrize(
    "forgery",
    [
        {"secret": "not-the-signing-secret"},
        # seconds from now, added when the test runs (not when it is collected: the suite
        # may reach it many minutes later, and a "future" time would be past by then)
        {"timestamp": -10 * 60},  # a replay: older than five minutes
        {"timestamp": +10 * 60},
    ],
    ids=["wrong-secret", "expired", "from-the-future"],
)
def test_a_forged_or_replayed_event_is_refused_with_401(
    slack_bot: SlackBot,
    fake_model: FakeChatModel,
    forgery: dict[str, Any],
) -> None:
    fake, client, _ = slack_bot
    if "timestamp" in forgery:
        forgery = {"timestamp": int(time.time()) + forgery["timestamp"]}
    assert send_event(client, mention("C1", "U1", "forged"), **forgery) == 401
    assert fake.posted() == [] and fake_model.calls == []


def test_a_tampered_or_unsigned_body_is_refused(
    slack_bot: SlackBot,
    fake_model: FakeChatModel,
) -> None:
    fake, client, _ = slack_bot
    body = event_body(mention("C1", "U1", "original"))
    headers = signed(SECRET, body, content_type=JSON)
    tampered = body.replace("original", "tampered")
    assert client.post("/slack/events", content=tampered, headers=headers).status_code == 401
    unsigned = {"Content-Type": JSON}
    assert client.post("/slack/events", content=body, headers=unsigned).status_code == 401
    assert fake.posted() == [] and fake_model.calls == []


def test_the_url_verification_challenge_is_answered_when_signed(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
) -> None:
    _, url = slack
    client, _ = bot(make_settings, url, fake_model)
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    response = client.post(
        "/slack/events", content=body, headers=signed(SECRET, body, content_type=JSON)
    )
    assert response.status_code == 200 and "c-123" in response.text
    forged = signed("wrong", body, content_type=JSON)
    assert client.post("/slack/events", content=body, headers=forged).status_code == 401


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("what is DNS?", "in_channel", "Hello from the fake model."),
        ("safety loose", "ephemeral", "'loose' is not a safety level"),
        ("safety strict", "ephemeral", "Safety level for this chat: strict."),
        ("", "ephemeral", "!reset"),
        ("help", "ephemeral", "!safety LEVEL"),
    ],
)
def test_the_slash_command(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
    text: str,
    kind: str,
    expected: str,
) -> None:
    fake, url = slack
    fake.admins.add("U7")  # a workspace admin may change the channel (tests below)
    client, _ = bot(make_settings, url, fake_model)
    body = command_body("/assistant", text, f"{url}/response/r1", "C7", "U7")
    response = client.post(
        "/slack/events", content=body, headers=signed(SECRET, body, content_type=FORM)
    )
    assert response.status_code == 200
    (answer,) = wait_for(lambda: fake.responses("r1"), what="the response")
    assert answer["response_type"] == kind
    assert expected in answer["text"]


def test_a_long_reply_is_split_and_nothing_in_it_can_ping_or_link(
    make_settings: Callable[..., Settings], slack: tuple[FakeSlack, str]
) -> None:
    fake, url = slack
    nasty = "Hey <!channel> see <https://evil.example|your bank> & <@U123>. "
    long_reply = "\n\n".join([nasty * 30, "```\n" + "x = a < b\n" * 400 + "```", nasty * 10])
    model = FakeChatModel(reply=lambda messages: long_reply)
    client, _ = bot(
        make_settings,
        url,
        model,
        model={"n_ctx": 16384},
        generation={"max_new_tokens": 8192},
    )
    send_event(client, mention("C1", "U1", "write a lot"))
    wait_for(
        lambda: "".join(p["text"] for p in fake.posted()).count("&lt;!channel&gt;") == 40,
        what="every piece",
    )
    texts = [p["text"] for p in fake.posted()]
    assert len(texts) > 2
    assert all(len(text) <= 3000 for text in texts)
    assert not any("<" in text or ">" in text for text in texts)
    unescaped = [t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for t in texts]
    assert " ".join(unescaped).replace("```", " ").split() == long_reply.replace("```", " ").split()


@pytest.mark.parametrize(
    ("slack", "missing"),
    [
        ({"signing_secret": SECRET}, "slack.bot_token"),
        ({"bot_token": TOKEN}, "slack.signing_secret"),
        ({"bot_token": TOKEN, "signing_secret": ""}, "slack.signing_secret"),
    ],
)
def test_a_missing_token_or_secret_is_named(
    make_settings: Callable[..., Settings], slack: dict[str, str], missing: str
) -> None:
    settings = make_settings(slack=slack)
    core = BotCore(
        settings, OpenMemory(None, None, LocalThreadLocks()), busy_wait=0, model=FakeChatModel()
    )
    with pytest.raises(BotConfigError, match=missing):
        create_app(settings, core)


@pytest.mark.parametrize(
    ("raw", "typed"),
    [
        (f"<@{BOT_USER}> hi", "hi"),
        (f"<@{BOT_USER}|assistant>   !reset", "!reset"),
        ("a &lt;b&gt; &amp;amp; c", "a <b> &amp; c"),
        (f"x <@{BOT_USER}> y", "x   y"),
    ],
)
def test_incoming_text(raw: str, typed: str) -> None:
    assert incoming_text(raw) == typed


def test_a_retried_event_is_answered_once(
    slack_bot: SlackBot,
    fake_model: FakeChatModel,
) -> None:
    fake, client, _ = slack_bot
    body = event_body(mention("C1", "U1", "once please"))
    for retry in range(3):
        headers = signed(SECRET, body, content_type=JSON)
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        assert client.post("/slack/events", content=body, headers=headers).status_code == 200
    assert send_event(client, mention("C1", "U1", "second question")) == 200
    wait_for(lambda: len(fake.posted("C1")) == 2, what="two replies")
    # The two run concurrently: either may reach the model first.
    assert sorted(call[-1].text for call in fake_model.calls) == ["once please", "second question"]


# --- who may change a channel ---------------------------------------------------------------

REFUSED = "Sorry, only this workspace's admins"


def users_asked(fake: FakeSlack) -> list[str]:
    return [str(params.get("user")) for method, params in fake.calls if method == "users.info"]


def slash(client: TestClient, url: str, name: str, text: str, channel: str, user: str) -> None:
    body = command_body("/assistant", text, f"{url}/response/{name}", channel, user)
    response = client.post(
        "/slack/events", content=body, headers=signed(SECRET, body, content_type=FORM)
    )
    assert response.status_code == 200


def test_in_a_channel_only_admins_change_the_safety_level_or_reset(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = slack
    fake.admins.add("UADMIN")
    client, core = bot(make_settings, url, fake_model, admins=("ULISTED",))
    channel = chat_key(TEAM, "C1")
    send_event(client, mention("C1", "U1", "a question"))
    wait_for(lambda: len(fake.posted("C1")) == 1, what="the answer")
    steps = [
        ("U1", "!safety relaxed", REFUSED, "moderate"),
        ("U1", "!reset", REFUSED, "moderate"),
        ("U1", "!safety", "(now moderate)", "moderate"),  # reading it is open to all
        ("UADMIN", "!safety strict", "Safety level for this chat: strict.", "strict"),
        ("ULISTED", "!safety relaxed", "Safety level for this chat: relaxed.", "relaxed"),
    ]
    for number, (sender, text, expected, level) in enumerate(steps, start=2):
        assert send_event(client, mention("C1", sender, text)) == 200
        wait_for(lambda n=number: len(fake.posted("C1")) == n, what=f"the reply to {text}")
        assert expected in fake.posted("C1")[-1]["text"]
        assert core.safety_level(channel) == level
    assert history(core, channel)[0] == "a question"  # U1's !reset deleted nothing
    assert "and the bot's own admins" in fake.posted("C1")[1]["text"]
    # Slack is asked about the unlisted senders who try a change, never about readers.
    assert users_asked(fake) == ["U1", "U1", "UADMIN"]


def test_a_slack_thread_in_a_channel_is_guarded_too(slack_bot: SlackBot) -> None:
    fake, client, core = slack_bot
    send_event(client, mention("C1", "U1", "!safety relaxed", thread_ts="1700000000.000100"))
    (posted,) = wait_for(lambda: fake.posted("C1"), what="the refusal")
    assert posted["text"].startswith(REFUSED)
    assert core.safety_level(chat_key(TEAM, "C1", "1700000000.000100")) == "moderate"


def test_the_slash_command_in_a_channel_is_guarded_and_in_a_dm_is_not(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = slack
    client, core = bot(make_settings, url, fake_model)
    slash(client, url, "r1", "safety relaxed", "C7", "U7")
    (refused,) = wait_for(lambda: fake.responses("r1"), what="the refusal")
    assert refused["text"].startswith(REFUSED) and refused["response_type"] == "ephemeral"
    assert core.safety_level(chat_key(TEAM, "C7")) == "moderate"
    slash(client, url, "r2", "safety relaxed", "D7", "U7")
    (changed,) = wait_for(lambda: fake.responses("r2"), what="the change")
    assert changed["text"] == "Safety level for this chat: relaxed."
    assert users_asked(fake) == ["U7"]


def test_a_direct_message_is_its_users_own(slack_bot: SlackBot) -> None:
    fake, client, _ = slack_bot
    send_event(client, direct_message("D1", "U1", "!safety strict"))
    send_event(client, direct_message("D2", "U2", "!reset"))
    wait_for(lambda: fake.posted("D1") and fake.posted("D2"), what="both replies")
    assert fake.posted("D1")[0]["text"] == "Safety level for this chat: strict."
    assert "history is deleted" in fake.posted("D2")[0]["text"]
    assert users_asked(fake) == []


def test_without_users_read_only_the_listed_admins_may(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = slack
    fake.admins.add("UADMIN")
    fake.users_read = False
    client, core = bot(make_settings, url, fake_model, admins=("ULISTED",))
    send_event(client, mention("C1", "UADMIN", "!safety relaxed"))
    wait_for(lambda: fake.posted("C1"), what="the refusal")
    # The reply names who can now: the list only, and why (not "this workspace's admins").
    refused = fake.posted("C1")[0]["text"]
    assert refused.startswith("Sorry, only the bot's own admins (slack.admins;")
    assert "users:read" in refused and "workspace's admins and" not in refused
    send_event(client, mention("C1", "ULISTED", "!safety relaxed"))
    wait_for(lambda: len(fake.posted("C1")) == 2, what="the change")
    assert core.safety_level(chat_key(TEAM, "C1")) == "relaxed"


def test_without_users_read_and_no_list_nobody_is_named_who_cannot(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
) -> None:
    fake, url = slack
    fake.admins.add("UADMIN")
    fake.users_read = False
    client, _ = bot(make_settings, url, fake_model)
    send_event(client, mention("C1", "UADMIN", "!reset"))
    (posted,) = wait_for(lambda: fake.posted("C1"), what="the refusal")
    assert posted["text"].startswith(
        "Sorry, only the bot's own admins (slack.admins, which lists nobody;"
    )


@pytest.mark.parametrize(
    ("status", "error", "transient"),
    [
        (200, "user_not_found", False),
        (200, "invalid_auth", False),
        (200, "account_inactive", False),
        (429, "ratelimited", True),
        (200, "internal_error", True),
        (503, "service_unavailable", True),
        (500, "", True),
    ],
)
def test_a_users_info_error_says_whether_trying_again_can_help(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    fake_model: FakeChatModel,
    caplog: pytest.LogCaptureFixture,
    status: int,
    error: str,
    transient: bool,
) -> None:
    fake, url = slack
    fake.users_info_error = (status, error)
    client, core = bot(make_settings, url, fake_model, admins=("ULISTED",))
    send_event(client, mention("C1", "U1", "!safety relaxed"))
    (posted,) = wait_for(lambda: fake.posted("C1"), what="the refusal")
    if transient:
        assert posted["text"] == NOT_CHECKED
    else:
        assert posted["text"].startswith("Sorry, I cannot check whether you may change")
        assert f"Slack answered {error} to users.info" in posted["text"]
        assert "trying again will not help" in posted["text"]
    assert core.safety_level(chat_key(TEAM, "C1")) == "moderate"
    # Slack's answer is logged in a line, not as a traceback.
    assert not [r for r in caplog.records if r.exc_info]
    # A listed admin still needs no answer from Slack.
    send_event(client, mention("C1", "ULISTED", "!safety relaxed"))
    wait_for(lambda: len(fake.posted("C1")) == 2, what="the change")
    assert core.safety_level(chat_key(TEAM, "C1")) == "relaxed"


def test_when_slack_cannot_be_asked_nothing_changes(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    from slack_sdk import WebClient

    from apps.bots.slack import channel_guard
    from tests.support.http_server import free_port

    settings = make_settings(slack={"admins": ["ULISTED"]})
    core = BotCore(
        settings,
        OpenMemory(InMemorySaver(), None, LocalThreadLocks()),
        busy_wait=5,
        model=fake_model,
    )
    # Nothing listens there: users.info fails to connect.
    gone = WebClient(token=TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/", timeout=2)
    chat = chat_key(TEAM, "C1")
    reply = core.handle(
        chat, "slack:T:U1", "!safety relaxed", "!", channel_guard(gone, settings, "U1")
    )
    assert reply == NOT_CHECKED
    assert core.safety_level(chat) == "moderate"
    # A listed admin needs no answer from Slack.
    listed = channel_guard(gone, settings, "ULISTED")
    assert core.handle(chat, "slack:T:ULISTED", "!safety relaxed", "!", listed) == (
        "Safety level for this chat: relaxed."
    )


def test_a_channel_is_answered_from_its_own_documents_never_a_users(
    slack_bot: SlackBot,
    fake_model: FakeChatModel,
    tmp_path: Path,
) -> None:
    fake, client, core = slack_bot
    settings = core.settings
    sender = f"slack:{TEAM}:U1"
    put_document(settings, settings.chroma.collection, tmp_path, "mill.md", MILL)
    put_document(settings, collection_of(settings, sender), tmp_path, "tower.md", TOWER)
    # One at a time: the model answers one turn at a time, a second would be told "busy".
    send_event(client, mention("C1", "U1", TOWER_QUESTION))
    wait_for(lambda: fake.posted("C1"), what="the channel's reply")
    send_event(client, direct_message("D1", "U1", MILL_QUESTION))
    wait_for(lambda: fake.posted("D1"), what="the direct reply")
    seen = "\n".join(m.text for call in fake_model.calls for m in call)
    assert TOWER_QUESTION in seen and MILL_QUESTION in seen
    assert "Ida Frane" not in seen and "barley" not in seen
    # The channel's own documents answer a Slack thread in it too.
    channel = collection_of(settings, chat_key(TEAM, "C1"))
    put_document(settings, channel, tmp_path, "tower.md", TOWER)
    send_event(client, mention("C1", "U2", TOWER_QUESTION, thread_ts="1700000000.000100"))
    wait_for(lambda: len(fake.posted("C1")) == 2, what="the thread's reply")
    assert "Ida Frane" in "\n".join(m.text for m in fake_model.calls[-1])


def three_pieces(make_settings: Callable[..., Settings], url: str) -> tuple[TestClient, BotCore]:
    """A bot whose every reply is three pieces: "one", "two" and "six" paragraphs."""
    reply = "\n\n".join(word * 700 for word in ("one ", "two ", "six "))
    return bot(
        make_settings,
        url,
        FakeChatModel(reply=lambda messages: reply),
        model={"n_ctx": 16384},
        generation={"max_new_tokens": 8192},
    )


@pytest.mark.parametrize("limited", [1, 3])
def test_a_rate_limited_piece_is_posted_again_and_nothing_is_lost(
    make_settings: Callable[..., Settings], slack: tuple[FakeSlack, str], limited: int
) -> None:
    fake, url = slack
    client, _ = three_pieces(make_settings, url)
    fake.post_errors.extend([(429, "ratelimited")] * limited)
    assert send_event(client, mention("C1", "U1", "write a lot")) == 200
    wait_for(lambda: len(fake.posted("C1")) == 3, what="every piece")
    assert [p["text"].split()[0] for p in fake.posted("C1")] == ["one", "two", "six"]
    assert [m for m, _ in fake.calls].count("chat.postMessage:failed") == limited


def test_a_refused_piece_gives_the_rest_up_and_says_so_in_the_log(
    make_settings: Callable[..., Settings],
    slack: tuple[FakeSlack, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = slack
    client, _ = three_pieces(make_settings, url)
    fake.post_errors.append((200, "not_in_channel"))
    assert send_event(client, mention("C1", "U1", "write a lot")) == 200
    wait_for(lambda: "not delivered" in caplog.text, what="the log line")
    assert "piece 1 of 3 failed (not_in_channel)" in caplog.text
    assert fake.posted("C1") == []  # no later piece alone, read as the whole reply
    # The next message is answered: one lost reply stops nothing.
    assert send_event(client, mention("C1", "U1", "again")) == 200
    wait_for(lambda: len(fake.posted("C1")) == 3, what="the next reply")


@pytest.mark.parametrize("text", ["", "what does this file say?"])
def test_a_file_shared_in_a_direct_message_gets_a_reply_that_only_text_is_read(
    slack_bot: SlackBot,
    fake_model: FakeChatModel,
    text: str,
) -> None:
    fake, client, _ = slack_bot
    files = [{"id": "F1", "name": "report.pdf", "mimetype": "application/pdf"}]
    shared = direct_message("D1", "U1", text, subtype="file_share", files=files)
    assert send_event(client, shared) == 200
    wait_for(lambda: fake.posted("D1"), what="the reply")
    assert [p["text"] for p in fake.posted("D1")] == [escape(NOT_TEXT)]
    assert fake_model.calls == []  # the question alone is not answered as if the file was read
