"""The bots as a user starts them: `assistant bot telegram|slack` in a process of its own.

Each test starts a local stand-in of the platform's HTTP API on 127.0.0.1 (in this
process, so it can read what the bot sent), then the bot with the fake model, pointed at
the stand-in. A message goes in through the bot's webhook and its reply must arrive at the
stand-in; a forged request must be refused. The bot is stopped by its PID. Nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from apps.bots.core import BUSY_MODEL, BUSY_THREAD, EMPTY, FAILED
from apps.bots.telegram import SECRET_HEADER
from tests.support.fake_slack import FakeSlack, command_body, event_body, mention, signed
from tests.support.fake_telegram import FakeTelegram, update
from tests.support.http_server import ServerThread, free_port, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CANNED = "This is a canned reply from the fake model."
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@contextmanager
def bot_process(platform: str, port: int, **env: str) -> Iterator[subprocess.Popen[str]]:
    """`assistant bot <platform>` on the fake model, listening on 127.0.0.1:port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.cli", "bot", platform, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "ASSISTANT_MODEL__BACKEND": "fake", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: _healthy(port) or process.poll() is not None,
            timeout=180,
            what=f"the {platform} bot to listen",
        )
        if process.poll() is not None:
            pytest.fail(f"the bot exited: {process.stdout.read() if process.stdout else ''}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_telegram_bot_answers_through_the_bot_api_and_refuses_a_forgery() -> None:
    token, secret = "987654:integration-TOKEN", "integration_secret-1"
    fake = FakeTelegram(token)
    port = free_port()
    with (
        ServerThread(fake.app) as api,
        bot_process(
            "telegram",
            port,
            ASSISTANT_TELEGRAM__TOKEN=token,
            ASSISTANT_TELEGRAM__WEBHOOK_SECRET=secret,
            ASSISTANT_TELEGRAM__API_BASE_URL=f"{api}/bot",
        ),
    ):
        hook = f"http://127.0.0.1:{port}/telegram"
        forged = httpx.post(hook, json=update(1, 31, 41, "forged"), headers={SECRET_HEADER: "x"})
        assert forged.status_code == 403
        real = httpx.post(hook, json=update(2, 31, 41, "hello"), headers={SECRET_HEADER: secret})
        assert real.status_code == 200
        assert wait_for(lambda: fake.sent(31), timeout=120, what="the reply") == [CANNED]
        httpx.post(hook, json=update(3, 31, 41, "/help"), headers={SECRET_HEADER: secret})
        wait_for(lambda: len(fake.sent(31)) == 2, timeout=60, what="the help text")
        # In a group only its administrators (asked with getChatMember) change the level.
        fake.admins.add((-31, 42))
        for number, sender in ((4, 41), (5, 42)):
            sent = update(number, -31, sender, "/safety relaxed")
            httpx.post(hook, json=sent, headers={SECRET_HEADER: secret})
            wait_for(lambda n=number: len(fake.sent(-31)) == n - 3, timeout=60, what="a reply")
    assert "/safety LEVEL" in fake.sent(31)[1]
    assert fake.methods()[0] == "getMe"
    member, admin = fake.sent(-31)
    assert member.startswith("Sorry, only this group's administrators can change")
    assert admin == "Safety level for this chat: relaxed."
    assert fake.methods().count("getChatMember") == 2


def test_slack_bot_answers_through_the_web_api_and_refuses_a_forgery() -> None:
    token, secret = "xoxb-integration", "integration-signing-secret"
    fake = FakeSlack(token)
    port = free_port()
    with (
        ServerThread(fake.app) as api,
        bot_process(
            "slack",
            port,
            ASSISTANT_SLACK__BOT_TOKEN=token,
            ASSISTANT_SLACK__SIGNING_SECRET=secret,
            ASSISTANT_SLACK__API_BASE_URL=f"{api}/api/",
        ),
    ):
        url = f"http://127.0.0.1:{port}/slack/events"
        body = event_body(mention("C42", "U42", "forged"))
        forged = httpx.post(url, content=body, headers=signed("not-it", body, content_type=JSON))
        assert forged.status_code == 401
        body = event_body(mention("C42", "U42", "hello"))
        real = httpx.post(url, content=body, headers=signed(secret, body, content_type=JSON))
        assert real.status_code == 200
        (posted,) = wait_for(lambda: fake.posted("C42"), timeout=120, what="the reply")
        body = command_body("/assistant", "help", f"{api}/response/r1", "C42", "U42")
        assert httpx.post(url, content=body, headers=signed(secret, body, content_type=FORM))
        (help_text,) = wait_for(lambda: fake.responses("r1"), timeout=60, what="the help")
        # In a channel only the workspace's admins (users.info) change the level.
        fake.admins.add("U44")
        for number, sender in enumerate(("U43", "U44"), start=1):
            body = event_body(mention("C43", sender, "!safety relaxed"))
            httpx.post(url, content=body, headers=signed(secret, body, content_type=JSON))
            wait_for(lambda n=number: len(fake.posted("C43")) == n, timeout=60, what="a reply")
    assert posted["text"] == CANNED
    assert "!safety LEVEL" in help_text["text"]
    # The forged one was never answered.
    assert [p["text"] for p in fake.posted("C42")] == [CANNED]
    member, admin = (p["text"] for p in fake.posted("C43"))
    assert member.startswith("Sorry, only this workspace's admins can change")
    assert admin == "Safety level for this chat: relaxed."


def test_telegram_bot_on_a_real_model(smollm2: Path) -> None:
    """The same path with llama.cpp (SmolLM2-135M): the model's own reply reaches the chat."""
    token, secret = "555:smollm2-TOKEN", "smollm2_secret"
    fake = FakeTelegram(token)
    port = free_port()
    with (
        ServerThread(fake.app) as api,
        bot_process(
            "telegram",
            port,
            ASSISTANT_TELEGRAM__TOKEN=token,
            ASSISTANT_TELEGRAM__WEBHOOK_SECRET=secret,
            ASSISTANT_TELEGRAM__API_BASE_URL=f"{api}/bot",
            ASSISTANT_MODEL__BACKEND="llamacpp",
            ASSISTANT_MODEL__GGUF_PATH=str(smollm2),
            ASSISTANT_MODEL__N_CTX="2048",
            ASSISTANT_CONTEXT__MAX_PROMPT_TOKENS="1024",
            ASSISTANT_GENERATION__MAX_NEW_TOKENS="24",
            ASSISTANT_GENERATION__DO_SAMPLE="false",
        ),
    ):
        hook = f"http://127.0.0.1:{port}/telegram"
        sent = httpx.post(
            hook,
            json=update(1, 61, 71, "What is the capital of France?"),
            headers={SECRET_HEADER: secret},
        )
        assert sent.status_code == 200
        (reply,) = wait_for(lambda: fake.sent(61), timeout=300, what="the model's reply")
    assert reply.strip()
    assert reply not in (CANNED, BUSY_MODEL, BUSY_THREAD, FAILED, EMPTY)
