"""The container image: static checks of its files (always) and the image end to end.

The end-to-end test is opt-in (ASSISTANT_CONTAINER_TESTS=1, `make test-container`): it
builds the image (minutes; a llama.cpp compile if no wheel is cached) and needs Podman or
Docker. It runs scripts/container/test.sh: Redis, Chroma and the API from the image on
127.0.0.1, two chat turns on one thread through the API, the thread found in Redis.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts" / "container"


def _requirements(*extras: str) -> list[str]:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "requirements.py"),
            str(REPO_ROOT / "pyproject.toml"),
            *extras,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.splitlines()


def test_requirements_are_the_core_plus_the_extras_named() -> None:
    core = _requirements()
    with_extras = _requirements("llamacpp", "ui")
    assert "langgraph==1.2.22" in core
    assert not any(line.startswith("llama-cpp-python") for line in core)
    assert "llama-cpp-python==0.3.36" in with_extras
    assert "gradio==6.31.0" in with_extras
    assert with_extras[: len(core)] == core
    # A requirement in two lists (torch: core and huggingface) is printed once.
    both = _requirements("huggingface")
    assert len(both) == len(set(both))
    assert sum(line.startswith("torch") for line in both) == 1


def test_the_image_compiles_llama_cpp_with_the_makefiles_version() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    containerfile = (REPO_ROOT / "Containerfile").read_text()
    version = re.search(r"^LLAMA_VERSION := (\S+)$", makefile, re.M)
    assert version is not None
    assert f"ARG LLAMA_VERSION={version.group(1)}" in containerfile
    # The same flags as `make llama-wheel` (AMX off, LLaVA off, native).
    for flag in ("-DLLAVA_BUILD=OFF", "-DGGML_NATIVE=ON", "-mno-amx-tile"):
        assert flag in containerfile


def test_every_role_the_entrypoint_serves_has_a_health_probe() -> None:
    entrypoint = (SCRIPTS / "entrypoint.sh").read_text()
    health = (SCRIPTS / "healthcheck.py").read_text()
    roles = re.findall(r"^  ([a-z]+)(?: \| [a-z-]+)?\)$", entrypoint, re.M)
    servers = [role for role in roles if role != "prepare"]
    assert set(servers) == {"api", "dev", "ui", "redis", "chroma"}
    for role in servers:
        assert f'"{role}":' in health, role


def test_compose_runs_the_assistant_with_redis_and_chroma_on_volumes() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "chroma", "api", "ui"} <= set(services)
    assert services["redis"]["image"].endswith("redis:8}")
    for name in ("redis", "chroma", "api", "ui"):
        volumes = services[name]["volumes"]
        assert any(volume.endswith(":/data") for volume in volumes), name
        assert volumes[0].split(":")[0] in compose["volumes"]
    env = services["api"]["environment"]
    assert env["REDIS_URL"] == "redis://redis:6379"
    assert env["ASSISTANT_CHROMA__URL"] == "http://chroma:8000"
    # Replicas share Redis: none may fall back to a private SQLite file.
    assert env["ASSISTANT_MEMORY__FALLBACK"] == "none"


@pytest.mark.skipif(
    os.environ.get("ASSISTANT_CONTAINER_TESTS") != "1",
    reason="opt-in: ASSISTANT_CONTAINER_TESTS=1 (make test-container) builds the image",
)
def test_the_image_answers_a_chat_through_its_api() -> None:
    if not (shutil.which("podman") or shutil.which("docker")):
        pytest.fail("neither podman nor docker is installed")
    result = subprocess.run(
        ["bash", str(SCRIPTS / "test.sh")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    # The script's findings (timings, answers, size): shown with -s, kept in the log.
    print("\n".join(line for line in result.stdout.splitlines() if line.startswith(">>>")))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert ">>> container test passed" in output
    answers = re.findall(r"^>>> '(.+?)' -> '(.*)' \(", output, re.M)
    assert [question for question, _ in answers] == ["Hello! My name is Ada.", "What is my name?"]
    assert all(answer.strip() for _, answer in answers)
    keys = re.search(r"^>>> checkpoint keys in Redis: (\d+)$", output, re.M)
    assert keys is not None and int(keys.group(1)) > 0
    chunks = re.search(r"^>>> chunks in the Chroma server after one ingest: (\d+)$", output, re.M)
    assert chunks is not None and int(chunks.group(1)) > 0
    for role in ("api", "redis", "chroma"):
        assert f">>> {role} healthcheck: healthy" in output
