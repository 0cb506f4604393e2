"""Fail a test that opens a connection, or looks up a name, beyond 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any

import pytest

LOCAL = {"127.0.0.1", "::1", "localhost", "testserver"}
"""Hosts a test may reach (``testserver``: Starlette's TestClient, which opens no socket)."""


def only_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse sockets and name lookups beyond this machine; returns the refused hosts."""
    refused: list[str] = []
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def check(host: Any) -> None:
        if isinstance(host, str) and host not in LOCAL:
            refused.append(host)
            raise ConnectionRefusedError(f"test left 127.0.0.1: {host}")

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address[0])
        connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address[0])
        return connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        check(host.decode() if isinstance(host, bytes) else host)
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return refused
