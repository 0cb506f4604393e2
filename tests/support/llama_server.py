"""Start llama-cpp-python's own OpenAI-compatible server on 127.0.0.1 (tests only).

The way a user would run it: ``python -m llama_cpp.server --model X --port N``, a process
of its own, stopped by its PID when the block ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.processes import free_port


class LlamaServer:
    """``with LlamaServer(gguf) as server:`` serves ``gguf`` at ``server.base_url``."""

    def __init__(self, gguf: Path, log_file: Path, n_ctx: int = 2048, alias: str = "") -> None:
        self.gguf = gguf
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.alias = alias or gguf.stem
        self.log_file = log_file
        self.n_ctx = n_ctx
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.gguf),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            "1",
        ]
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        deadline = time.monotonic() + 120  # only stops a hang; nothing asserts on time
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited; see {self.log_file}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama_cpp.server did not start; see {self.log_file}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
