"""notebooks/quickstart.ipynb, executed headless on SmolLM2 and a test Redis.

The kernel is the Python running the tests (a kernelspec written to a temporary folder
names ``sys.executable``), so it sees the same venv; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from graph.settings import load_settings
from tools.memory import FallbackSaver, list_threads, open_checkpointer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
KERNEL = "python3"  # the name in the notebook's metadata
CELL_TIMEOUT = 120


def kernel_manager(tmp_path: Path) -> AsyncKernelManager:
    """A manager whose only kernelspec runs this interpreter (never one found elsewhere)."""
    spec_dir = tmp_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "local-assistant (test)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False)
    # IPC: the kernel's sockets are files here, not TCP ports (an absolute path, or they
    # would land in the kernel's working directory, the repository).
    return AsyncKernelManager(
        kernel_name=KERNEL,
        kernel_spec_manager=specs,
        transport="ipc",
        ip=str(tmp_path / "kernel-ipc"),
    )


def read_notebook() -> Any:
    return nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]


def cells_by_id(nb: Any) -> dict[str, Any]:
    return {cell["id"]: cell for cell in nb.cells}


def text_of(cell: Any) -> str:
    """What a code cell printed (stdout) and displayed as text."""
    parts: list[str] = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream" and out["name"] == "stdout":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


def stderr_of(cell: Any) -> str:
    return "".join(
        out["text"]
        for out in cell.get("outputs", [])
        if out["output_type"] == "stream" and out["name"] == "stderr"
    )


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in the output:\n{text}"
    return int(found.group(1))


def test_quickstart_notebook_is_committed_clean() -> None:
    nb = read_notebook()
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell["cell_type"] == "code"]
    assert code
    assert all(not cell["outputs"] and cell["execution_count"] is None for cell in code)
    assert nb.metadata["kernelspec"]["name"] == KERNEL


def test_quickstart_notebook_runs_headless(
    smollm2: Path, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernel inherits this environment: the small model, short greedy replies, the
    # test Redis (the autouse fixture already gave a fresh ASSISTANT_DATA_DIR), and
    # Jupyter/IPython state kept out of the home directory.
    for key, value in {
        "ASSISTANT_MODEL__BACKEND": "llamacpp",
        "ASSISTANT_MODEL__GGUF_PATH": str(smollm2),
        "ASSISTANT_MODEL__N_CTX": "2048",
        "ASSISTANT_CONTEXT__MAX_PROMPT_TOKENS": "1024",
        "ASSISTANT_GENERATION__MAX_NEW_TOKENS": "16",
        "ASSISTANT_GENERATION__DO_SAMPLE": "false",
        "REDIS_URL": redis_url,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }.items():
        monkeypatch.setenv(key, value)

    nb = read_notebook()
    client = NotebookClient(
        nb,
        km=kernel_manager(tmp_path),
        timeout=CELL_TIMEOUT,
        startup_timeout=60,
        resources={"metadata": {"path": str(ROOT)}},  # the kernel's working directory
    )
    try:
        client.execute(cleanup_kc=True)  # our manager: shut the kernel down afterwards
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        pytest.fail(f"notebooks/quickstart.ipynb failed:\n{exc}", pytrace=False)

    cells = cells_by_id(nb)
    assert text_of(cells["setup"]).rstrip().endswith(f"python: {sys.executable}")

    memory = cells["memory"]
    assert re.search(r"threads are kept by: \w*RedisSaver\n", text_of(memory)), text_of(memory)
    assert "WARNING" not in stderr_of(memory), stderr_of(memory)  # no fallback to SQLite

    turns = text_of(cells["turns"])
    thread_id = re.search(r"thread: (quickstart-\w+)", turns)
    assert thread_id, turns
    assert "4 messages on the thread" in turns

    knobs = text_of(cells["knobs"])
    assert "strict: allowed=False" in knobs and "moderate: allowed=True" in knobs, knobs

    stream = text_of(cells["stream"])
    assert number(r"streamed (\d+) chunks", stream) > 1, stream
    assert "concept: explain_simply" in stream, stream

    # 5 turns: 4 answered (6 checkpoints each) and 1 refused (4).
    assert number(r"(\d+) checkpoints on thread", text_of(cells["history"])) >= 25

    replay = text_of(cells["replay"])
    assert "thread head: 4 messages" in replay, replay
    assert "fork next=['generate']" in replay, replay  # replay = a copy, then re-execution

    fork = text_of(cells["fork"])
    assert "human: Who am I? Just my name." in fork, fork
    sources = re.search(r"checkpoint sources now: (\{.*\})", fork)
    assert sources and "'fork': 1" in sources.group(1) and "'update': 1" in sources.group(1)

    pictures = [
        out["data"]["image/png"]
        for out in cells["picture"]["outputs"]
        if "image/png" in out.get("data", {})
    ]
    assert len(pictures) == 1, cells["picture"]["outputs"]
    assert base64.b64decode(pictures[0]).startswith(b"\x89PNG\r\n\x1a\n")

    assert "memory closed" in text_of(cells["close"])

    # The thread really went to Redis and outlived the notebook's connection.
    with open_checkpointer(load_settings()) as saver:
        assert isinstance(saver, FallbackSaver) and not saver.failed_over
        stored = {t.thread_id: t.checkpoints for t in list_threads(saver)}
    assert stored.get(thread_id.group(1), 0) >= 25, stored
