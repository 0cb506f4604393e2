"""`assistant bot telegram|slack`: what a user sees when a setting is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, assistant


@pytest.mark.parametrize(
    ("platform", "env", "named"),
    [
        ("telegram", {}, "telegram.token"),
        ("telegram", {"ASSISTANT_TELEGRAM__TOKEN": "1:abc"}, "telegram.webhook_secret"),
        ("slack", {}, "slack.bot_token"),
        ("slack", {"ASSISTANT_SLACK__BOT_TOKEN": "xoxb-1"}, "slack.signing_secret"),
    ],
)
def test_a_missing_token_is_one_clear_line_and_exit_2(
    platform: str, env: dict[str, str], named: str
) -> None:
    result = assistant("bot", platform, "--port", "1", **env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bot_help_lists_both_platforms() -> None:
    result = assistant("bot", "--help")
    assert result.returncode == 0
    assert "telegram" in result.stdout and "slack" in result.stdout


def test_the_cli_loads_no_bot_sdk_until_a_bot_command_runs() -> None:
    code = (
        "import sys, apps.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('telegram', 'slack_bolt', 'slack_sdk', 'apps') and m.startswith(('telegram', "
        "'slack', 'apps.bots'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("platform", "env"),
    [
        (
            "telegram",
            {
                "ASSISTANT_TELEGRAM__TOKEN": "1:abc",
                "ASSISTANT_TELEGRAM__WEBHOOK_SECRET": "secret",
                "ASSISTANT_TELEGRAM__API_BASE_URL": "http://127.0.0.1:9/bot",
            },
        ),
        (
            "slack",
            {
                "ASSISTANT_SLACK__BOT_TOKEN": "xoxb-1",
                "ASSISTANT_SLACK__SIGNING_SECRET": "secret",
                "ASSISTANT_SLACK__API_BASE_URL": "http://127.0.0.1:9/api/",
            },
        ),
    ],
)
def test_an_unreachable_api_or_refused_token_is_one_line_and_exit_1(
    platform: str, env: dict[str, str]
) -> None:
    # Port 9 (discard) on 127.0.0.1: nothing listens, nothing leaves the machine.
    result = assistant("bot", platform, "--port", "1", **env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("error:") and ("token" in lines[-1]), result.stderr


def test_the_loopback_guard_of_the_bot_tests_refuses_other_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from tests.support.loopback import only_loopback

    refused = only_loopback(monkeypatch)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)  # TEST-NET-1: never routed
    with pytest.raises(ConnectionRefusedError):
        socket.getaddrinfo("api.telegram.org", 443)
    assert refused == ["192.0.2.1", "api.telegram.org"]
