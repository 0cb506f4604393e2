"""A Chroma server on 127.0.0.1 for tests: ``chroma run`` from the chromadb package.

What a deployment runs for documents shared by several assistant replicas
(``chroma.url``). Started on a free port with its data in a given directory, ready once
``/api/v2/heartbeat`` answers, and stopped by PID (its process group: SIGTERM, then
SIGKILL). Telemetry is off.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import HOST, free_port, stop_group

START_TIMEOUT = 60.0


class ChromaServerError(RuntimeError):
    """The server cannot be started; the message carries its log."""


@dataclass
class ChromaServer:
    """A running ``chroma run``."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_file: Path

    def log(self) -> str:
        """The server's output so far."""
        return self.log_file.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL if it lingers."""
        stop_group(self.process)


def _chroma_command() -> list[str]:
    # The console script sits next to this interpreter in a virtualenv.
    script = Path(sys.executable).with_name("chroma")
    if not script.exists():
        raise ChromaServerError(f"no chroma command next to {sys.executable}: pip install chromadb")
    return [str(script)]


def start(data_dir: Path) -> ChromaServer:
    """Start ``chroma run --path data_dir`` on a free port of 127.0.0.1.

    Raises:
        ChromaServerError: chromadb is missing, or the server did not answer within 60 s
            (the message has its log).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_file = data_dir.with_name(data_dir.name + ".log")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    command = [*_chroma_command(), "run", "--path", str(data_dir), "--host", HOST]
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = ChromaServer(process, f"http://{HOST}:{port}", data_dir, log_file)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise ChromaServerError(f"chroma run exited ({process.returncode}):\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/api/v2/heartbeat", timeout=2).status_code == 200:
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise ChromaServerError(
                f"chroma run did not answer in {START_TIMEOUT:.0f} s:\n{server.log()}"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def running(data_dir: Path) -> Iterator[ChromaServer]:
    """A Chroma server for the ``with`` block."""
    server = start(data_dir)
    try:
        yield server
    finally:
        server.stop()
