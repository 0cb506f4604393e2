"""``--host`` of every server command: a bad address is named as such, before anything
else is checked (``serve`` said API keys were needed, ``ui`` that the page has no login)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

import apps.cli.main as cli

NOT_A_HOST = [
    "bad host",
    "",
    " 127.0.0.1",
    "-leading-dash",
    "a..b",
    "http://0.0.0.0",
    "0.0.0.0:8000",
    "[::1]",
    "x" * 64,
    "caf\u00e9 bar",
]

SERVERS = [
    ["serve"],
    ["ui"],
    ["ui", "--no-login"],
    ["bot", "telegram"],
    ["bot", "slack"],
]


@pytest.mark.parametrize("host", NOT_A_HOST)
def test_host_option_refuses_what_is_not_an_address_or_a_name(host: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not an IP address or a host name"):
        cli.host_option(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1", "::", "localhost", "LocalHost"])
def test_host_option_takes_addresses_and_names(host: str) -> None:
    assert cli.host_option(host) == host


def test_a_name_that_does_not_resolve_says_so() -> None:
    with pytest.raises(typer.BadParameter, match="does not resolve here"):
        cli.host_option("no-such-host.invalid")  # .invalid never resolves (RFC 6761)


@pytest.mark.parametrize("command", SERVERS)
@pytest.mark.parametrize("host", ["bad host", "0.0.0.0:8000", "no-such-host.invalid"])
def test_every_server_names_a_bad_host_first(
    monkeypatch: pytest.MonkeyPatch, command: list[str], host: str
) -> None:
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    monkeypatch.delenv("ASSISTANT_API__KEYS", raising=False)
    done = CliRunner().invoke(cli.app, [*command, "--host", host, "--port", "1"])
    assert done.exit_code == 2, done.output
    flat = " ".join(done.output.split())
    assert "--host" in flat and repr(host) in flat, flat
    assert "API keys" not in flat and "no login" not in flat and "token" not in flat.lower()
    assert "Traceback" not in flat
