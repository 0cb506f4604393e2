"""The container image: static checks of its files (always) and the image end to end.

The end-to-end tests are opt-in (ASSISTANT_CONTAINER_TESTS=1, `make test-container`): they
build the image (minutes; a llama.cpp compile if no wheel is cached) and need Podman or
Docker. The first runs scripts/container/test.sh: Redis, Chroma and the API from the image
on 127.0.0.1, two chat turns on one thread through the API, the thread found in Redis. The
second runs scripts/container/compose-test.sh: compose.yaml brought up with podman-compose
(or `docker compose`), the same chat, the checkpoints in Redis, a document in Chroma, the
web UI answering, then brought down (skipped when no compose tool is installed).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _answers(output: str) -> list[tuple[str, str]]:
    """The (question, answer) pairs the scripts print as ``>>> 'q' -> 'a' (1.2 s)``.

    The answer is Python's repr of the reply (cut to 120 characters): in double quotes
    when the reply has an apostrophe.
    """
    pairs = []
    for question, answer in re.findall(r"^>>> '(.+?)' -> ('.*'|\".*\") \(", output, re.M):
        pairs.append((question, ast.literal_eval(answer)))
    return pairs


def test_answers_are_read_in_either_quoting() -> None:
    output = (
        ">>> 'Hello! My name is Ada.' -> \"I'm glad to help!\" (20.4 s)\n"
        ">>> 'What is my name?' -> 'Ada.' (0.7 s)\n"
        ">>> 'Third?' -> '' (0.1 s)\n"
        ">>> checkpoint keys in Redis: 66\n"
    )
    assert _answers(output) == [
        ("Hello! My name is Ada.", "I'm glad to help!"),
        ("What is my name?", "Ada."),
        ("Third?", ""),
    ]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return compose


def test_compose_runs_the_assistant_with_redis_and_chroma_on_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"redis", "chroma", "prepare", "api", "ui"} <= set(services)
    assert services["redis"]["image"].endswith("redis:8}")
    for name in ("redis", "chroma", "prepare", "api", "ui"):
        volumes = services[name]["volumes"]
        assert any(volume.endswith(":/data") for volume in volumes), name
        assert volumes[0].split(":")[0] in compose["volumes"]
    for name in ("prepare", "api", "ui"):
        env = services[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379", name
        assert env["ASSISTANT_CHROMA__URL"] == "http://chroma:8000", name
        # Replicas share Redis: none may fall back to a private SQLite file.
        assert env["ASSISTANT_MEMORY__FALLBACK"] == "none", name


def test_compose_starts_the_api_and_ui_after_the_model_is_prepared() -> None:
    services = _compose()["services"]
    assert services["prepare"]["command"] == ["prepare"]
    # A one-shot service: restarting it would run it forever.
    assert services["prepare"]["restart"] == "no"
    for name in ("api", "ui"):
        depends = services[name]["depends_on"]
        assert depends["prepare"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_started", name
        assert depends["chroma"]["condition"] == "service_started", name
    assert services["api"]["command"] == ["api"]
    assert services["ui"]["command"] == ["ui"]


def test_compose_api_needs_keys_and_the_ui_stays_on_loopback() -> None:
    services = _compose()["services"]
    # `assistant serve` refuses 0.0.0.0 without keys: compose says so before starting.
    keys = services["api"]["environment"]["ASSISTANT_API__KEYS"]
    assert keys.startswith("${ASSISTANT_API__KEYS:?"), keys
    assert "ASSISTANT_API__KEYS" not in services["ui"]["environment"]
    # The chat page has no login: loopback unless UI_ADDRESS is set.
    assert services["ui"]["ports"] == ["${UI_ADDRESS:-127.0.0.1}:${UI_PORT:-7860}:7860"]


def test_compose_sets_ulimits_on_every_service() -> None:
    # Podman here cannot raise a container's rlimits by itself (docs/deployment.md).
    for name, service in _compose()["services"].items():
        limits = service["ulimits"]
        assert set(limits) == {"nofile", "nproc"}, name
        for limit in limits.values():
            assert limit["soft"] == limit["hard"], name


def test_compose_uses_only_compose_spec_keys() -> None:
    # The same file for docker compose and podman-compose: no x-podman or podman-only keys
    # (top-level x- extension fields are the spec's own anchors).
    compose = _compose()
    top = {key for key in compose if not key.startswith("x-")}
    assert top <= {"name", "services", "volumes", "networks", "configs", "secrets"}, top
    spec_keys = {
        "image", "build", "command", "environment", "volumes", "ports", "depends_on",
        "restart", "ulimits", "healthcheck",
    }  # fmt: skip
    for name, service in compose["services"].items():
        assert set(service) <= spec_keys, (name, set(service) - spec_keys)


def test_the_image_installs_the_api_extra_and_serves_it_in_the_api_role() -> None:
    extras = [
        line
        for line in (SCRIPTS / "extras.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert {"llamacpp", "ui", "api", "remote"} <= set(extras)
    # Each is an extra pyproject.toml defines (requirements.py fails on any other).
    assert _requirements(*extras)
    with pytest.raises(subprocess.CalledProcessError):
        _requirements("no-such-extra")
    entrypoint = (SCRIPTS / "entrypoint.sh").read_text()
    api_role = entrypoint.split("  api)", 1)[1].split(";;", 1)[0]
    assert "exec assistant serve" in api_role
    assert "langgraph dev" not in api_role


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
    answers = _answers(output)
    assert [question for question, _ in answers] == ["Hello! My name is Ada.", "What is my name?"]
    assert all(answer.strip() for _, answer in answers)
    keys = re.search(r"^>>> checkpoint keys in Redis: (\d+)$", output, re.M)
    assert keys is not None and int(keys.group(1)) > 0
    chunks = re.search(r"^>>> chunks in the Chroma server after one ingest: (\d+)$", output, re.M)
    assert chunks is not None and int(chunks.group(1)) > 0
    for role in ("api", "redis", "chroma"):
        assert f">>> {role} healthcheck: healthy" in output


def _compose_tool() -> list[str] | None:
    """The compose command compose-test.sh would pick, or None when there is none."""
    if os.environ.get("COMPOSE"):
        return os.environ["COMPOSE"].split()
    for candidate in (shutil.which("podman-compose"), REPO_ROOT / ".tools/bin/podman-compose"):
        if candidate and Path(candidate).is_file():
            return [str(candidate)]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.skipif(
    os.environ.get("ASSISTANT_CONTAINER_TESTS") != "1",
    reason="opt-in: ASSISTANT_CONTAINER_TESTS=1 (make test-container) builds the image",
)
def test_the_compose_stack_answers_a_chat_and_keeps_state_in_redis_and_chroma() -> None:
    tool = _compose_tool()
    if tool is None:
        pytest.skip(
            "no compose tool: install podman-compose into .tools (docs/deployment.md) "
            "or docker compose, or set COMPOSE"
        )
    result = subprocess.run(
        ["bash", str(SCRIPTS / "compose-test.sh")],
        cwd=REPO_ROOT,
        env={**os.environ, "COMPOSE": " ".join(tool)},
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    print("\n".join(line for line in result.stdout.splitlines() if line.startswith(">>>")))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert ">>> compose test passed" in output
    assert ">>> API without a key: 401" in output
    answers = _answers(output)
    assert [question for question, _ in answers] == ["Hello! My name is Ada.", "What is my name?"]
    assert all(answer.strip() for _, answer in answers)
    keys = re.search(r"^>>> checkpoint keys in Redis: (\d+)$", output, re.M)
    assert keys is not None and int(keys.group(1)) > 0
    chunks = re.search(r"^>>> chunks in the Chroma server after one ingest: (\d+)$", output, re.M)
    assert chunks is not None and int(chunks.group(1)) > 0
    assert ">>> web UI answers: 200" in output
    assert ">>> files of a local store in the API's volume: 0" in output
