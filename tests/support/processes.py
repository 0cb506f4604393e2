"""Child processes and ports for tests: free ports, clean environments, stopping by group.

Every server a test starts listens on 127.0.0.1 on a port nothing else uses, runs in a
process group of its own (``start_new_session=True``), and is stopped by that group, so
its children go with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

HOST = "127.0.0.1"

OFFLINE_ENV = {
    # What scripts/dev_server.sh exports: no CLI analytics, no PyPI version check.
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    # No tracing, no telemetry, no hub downloads.
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "DO_NOT_TRACK": "1",
}
"""Switches that keep a child process offline and quiet."""


def free_port() -> int:
    """A TCP port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env(**settings: str) -> dict[str, str]:
    """This process's environment for a child, without the developer's own settings.

    ``ASSISTANT_*`` variables and ``REDIS_URL`` are dropped (a developer's shell must not
    reach the child), :data:`OFFLINE_ENV` and unbuffered output are added (logs are read
    while the child runs), then ``settings``.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ASSISTANT_") and key != "REDIS_URL"
    }
    return {**env, **OFFLINE_ENV, "PYTHONUNBUFFERED": "1", **settings}


def short_replies_env(data_dir: Path, gguf: Path, **settings: str) -> dict[str, str]:
    """:func:`child_env` for a server on llama.cpp with ``gguf``: a 2048-token window,
    short greedy replies (16 tokens), data in ``data_dir``, then ``settings``."""
    defaults = {
        "ASSISTANT_DATA_DIR": str(data_dir),
        "ASSISTANT_MODEL__BACKEND": "llamacpp",
        "ASSISTANT_MODEL__GGUF_PATH": str(gguf),
        "ASSISTANT_MODEL__N_CTX": "2048",
        "ASSISTANT_CONTEXT__MAX_PROMPT_TOKENS": "1024",
        "ASSISTANT_GENERATION__MAX_NEW_TOKENS": "16",
        "ASSISTANT_GENERATION__DO_SAMPLE": "false",
    }
    return child_env(**{**defaults, **settings})


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, then SIGKILL if it lingers (15 s, then 5 s)."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
