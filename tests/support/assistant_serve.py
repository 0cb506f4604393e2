"""``assistant serve`` in a process of its own, for integration tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import HOST, free_port, stop_group

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A running ``assistant serve``: its process, address, log and API key."""

    process: subprocess.Popen[bytes]
    url: str
    log_file: Path
    key: str

    def log(self) -> str:
        """The server's output so far."""
        return self.log_file.read_text(errors="replace")

    def client(self, key: str | None = None) -> openai.OpenAI:
        """The official client, no retries, 10 minutes per request (a loaded 2-core CPU)."""
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, timeout=600
        )


@contextlib.contextmanager
def serve(env: dict[str, str], log_file: Path, key: str, timeout: float) -> Iterator[Served]:
    """``assistant serve`` on a free port of 127.0.0.1 until the block ends.

    Args:
        env: The child's environment (:func:`tests.support.processes.child_env`).
        log_file: Where its output goes; printed when the block fails.
        key: An API key the server accepts (``api.keys``), to poll ``/v1/models``.
        timeout: Seconds to wait for the first answer before the test fails.
    """
    port = free_port()
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "apps.cli", "serve", "--host", HOST, "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, f"http://{HOST}:{port}", log_file, key)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"assistant serve exited ({process.returncode}):\n{served.log()}")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(
                    f"{served.url}/v1/models", headers={"Authorization": f"Bearer {key}"}
                )
                if answer.status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"assistant serve did not answer:\n{served.log()}")
            time.sleep(0.2)
        yield served
    except BaseException:
        print(f"--- assistant serve log ({log_file}) ---\n{served.log()}")
        raise
    finally:
        stop_group(process)
