"""`assistant ui` on another address than loopback: the page has no login, so it is refused
unless the operator says so (``--no-login``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import assistant


@pytest.fixture
def taken() -> Iterator[int]:
    """A port already listened on, on every address: a start that gets past the host check
    stops at once on it (exit 1), so no page is ever served."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        yield held.getsockname()[1]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_network_address_is_refused_without_no_login(host: str, tmp_path: object) -> None:
    done = assistant("ui", "--host", host, "--port", "1", ASSISTANT_DATA_DIR=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert f"refusing to listen on {host}: the chat page has no login" in done.stderr
    assert "--no-login" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_login_lets_a_network_address_through_with_a_warning(
    taken: int, tmp_path: object
) -> None:
    done = assistant(
        "ui", "--host", "0.0.0.0", "--port", str(taken), "--no-login",
        ASSISTANT_DATA_DIR=str(tmp_path),
    )  # fmt: skip
    assert "refusing" not in done.stderr
    assert "has no login" in done.stderr  # the warning
    assert done.returncode == 1 and f"cannot listen on 0.0.0.0:{taken}" in done.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_needs_no_flag(host: str, taken: int, tmp_path: object) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as local:
        local.bind(("127.0.0.1", 0))
        local.listen()
        port = local.getsockname()[1]
        done = assistant(
            "ui", "--host", host, "--port", str(port), ASSISTANT_DATA_DIR=str(tmp_path)
        )
    assert "refusing" not in done.stderr and "no login" not in done.stderr
    assert done.returncode == 1 and "cannot listen on" in done.stderr
