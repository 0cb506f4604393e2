"""scripts/dev_server.sh: the unauthenticated dev server stays on this machine unless asked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dev_server.sh"


def run_script(host: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with ``echo`` standing in for ``langgraph`` (prints what it would run)."""
    environ = {**os.environ, "DEV_SERVER_HOST": host, "DEV_SERVER_PORT": "1", **env}
    environ["LANGGRAPH"] = "/bin/echo"
    return subprocess.run(
        ["bash", str(SCRIPT)], env=environ, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "192.168.0.7", "myhost.example", "::"])
def test_a_host_others_reach_is_refused_with_the_way_out(host: str) -> None:
    result = run_script(host)
    assert result.returncode == 1
    assert "no authentication" in result.stderr
    assert "DEV_SERVER_ALLOW_REMOTE=1" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_this_machine_is_served(host: str) -> None:
    result = run_script(host)
    assert result.returncode == 0, result.stderr
    assert f"dev --host {host} --port 1 --no-browser" in result.stdout


def test_another_host_is_served_when_asked_by_name() -> None:
    result = run_script("0.0.0.0", DEV_SERVER_ALLOW_REMOTE="1")
    assert result.returncode == 0, result.stderr
    assert "--host 0.0.0.0" in result.stdout
