"""``langgraph dev`` serving the repository's langgraph.json, for integration tests.

The server runs from a directory of its own (its ``.langgraph_api/`` lands there and no
repository ``.env`` is read), on a free port of 127.0.0.1, in a process group of its own
that is stopped as a whole.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.processes import HOST, free_port, short_replies_env, stop_group

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # a cold start takes ~5 s; a busy 2-core machine needs more

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_API_URL = re.compile(r"API: (http://\S+)")


@dataclass
class DevServer:
    """A running ``langgraph dev`` and where its output goes."""

    process: subprocess.Popen[bytes]
    log_file: Path
    redis_url: str
    url: str = ""

    def log(self) -> str:
        """The server's output so far, without colour codes."""
        return _ANSI.sub("", self.log_file.read_text(errors="replace"))

    @contextlib.contextmanager
    def log_on_failure(self) -> Iterator[None]:
        """Print the server's log if the block fails (pytest shows it with the failure).

        A fixture's teardown cannot tell pytest to show its output, so the tests do it.
        """
        try:
            yield
        except BaseException:
            print(f"--- langgraph dev log ({self.log_file}) ---\n{self.log()}")
            raise


def _absolute(spec: str) -> str:
    path, sep, attr = spec.rpartition(":")
    return f"{(REPO_ROOT / path).resolve()}{sep}{attr}" if path.startswith(".") else spec


def server_config(directory: Path) -> Path:
    """The repository's langgraph.json, made to run from another directory.

    ``langgraph dev`` resolves paths against its working directory, so they become
    absolute; ``env`` is dropped because the server would load a developer's ``.env``
    over the environment the test sets up.
    """
    config = json.loads((REPO_ROOT / "langgraph.json").read_text())
    config["dependencies"] = [str(REPO_ROOT)]
    config["graphs"] = {name: _absolute(spec) for name, spec in config["graphs"].items()}
    config["checkpointer"]["path"] = _absolute(config["checkpointer"]["path"])
    config["store"]["path"] = _absolute(config["store"]["path"])
    if "http" in config:  # the OpenAI-compatible routes (apps/api/server.py)
        config["http"]["app"] = _absolute(config["http"]["app"])
    config.pop("env", None)
    path = directory / "langgraph.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def server_env(directory: Path, gguf: Path, redis_url: str, **settings: str) -> dict[str, str]:
    """The server's environment: llama.cpp on ``gguf``, short greedy replies, threads in Redis."""
    return short_replies_env(directory / "data", gguf, **{"REDIS_URL": redis_url, **settings})


def _wait_until_up(server: DevServer) -> str:
    """The server's base URL, once ``/ok`` answers."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"langgraph dev exited ({server.process.returncode}):\n{server.log()}")
        # The URL is read from the log, not assumed: when the port is taken in the
        # meantime, langgraph dev quietly picks another one.
        found = _API_URL.search(server.log())
        if found:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{found[1]}/ok", timeout=2.0).status_code == 200:
                    return found[1]
        time.sleep(0.25)
    pytest.fail(f"langgraph dev did not answer within {START_TIMEOUT:.0f} s:\n{server.log()}")


@contextlib.contextmanager
def running(directory: Path, env: dict[str, str]) -> Iterator[DevServer]:
    """``langgraph dev`` from ``directory`` with ``env`` (:func:`server_env`) for the block."""
    command = [
        str(Path(sys.executable).with_name("langgraph")),
        "dev",
        "--config", str(server_config(directory)),
        "--host", HOST,
        "--port", str(free_port()),
        "--no-browser",
        "--no-reload",
    ]  # fmt: skip
    log_file = directory / "server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DevServer(process=process, log_file=log_file, redis_url=env["REDIS_URL"])
    try:
        server.url = _wait_until_up(server)
        yield server
    finally:
        stop_group(process)
