"""`assistant model path` and the default model joined, with progress, before a chat."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import typer

from apps.cli import main as cli
from graph.settings import load_settings
from tests.conftest import assistant
from tools.models import files
from tools.models.files import DEFAULT_MODEL, ModelFileError


def test_model_path_exits_1_when_the_set_file_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / ("a-long-folder-name-" * 6) / "nope.gguf"  # longer than a terminal line
    done = assistant("model", "path", ASSISTANT_MODEL__GGUF_PATH=str(missing))
    assert done.returncode == 1
    assert done.stdout.strip() == str(missing)
    assert "no such file" in done.stderr


def test_model_path_says_when_the_default_model_is_not_joined_yet() -> None:
    done = assistant("model", "path")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(DEFAULT_MODEL.filename)
    assert "not joined yet" in done.stderr and "model prepare" in done.stderr


class Joins:
    """Stands in for the 1.2 GB copy: records each call and reports progress."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[Path] = []
        self.fail = fail

    def __call__(self, cache_dir: Path, model: Any, progress: Any = None) -> Path:
        self.calls.append(cache_dir)
        if self.fail:
            raise ModelFileError("the parts add up to 3 bytes")
        if progress is not None:
            progress(model.size // 2, model.size)
        return cache_dir / str(model.filename)


@pytest.mark.parametrize(
    ("settings", "prepared", "joined"),
    [
        ({"model": {"backend": "llamacpp"}}, False, True),
        ({"model": {"backend": "llamacpp"}}, True, False),
        ({"model": {"backend": "llamacpp", "gguf_path": __file__}}, False, False),
        ({"model": {"backend": "fake"}}, False, False),
    ],
)
def test_a_chat_joins_the_default_model_first_only_when_it_will_load_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: dict[str, Any],
    prepared: bool,
    joined: bool,
) -> None:
    joins = Joins()
    monkeypatch.setattr(files, "prepare_split_model", joins)
    monkeypatch.setattr(files, "is_prepared", lambda cache_dir, model=DEFAULT_MODEL: prepared)
    cli._model_ready(load_settings(**settings))
    assert bool(joins.calls) is joined
    assert ("joined once" in capsys.readouterr().err) is joined


def test_parts_that_do_not_join_end_the_command_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(files, "prepare_split_model", Joins(fail=True))
    monkeypatch.setattr(files, "is_prepared", lambda cache_dir, model=DEFAULT_MODEL: False)
    with pytest.raises(typer.Exit) as done:
        cli._model_ready(load_settings(model={"backend": "llamacpp"}))
    assert done.value.exit_code == 1
    assert "add up to 3 bytes" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["gguf_path", "lora_path"])
@pytest.mark.parametrize("command", ["serve", "chat"])
def test_a_missing_model_file_ends_the_command_before_it_starts(
    tmp_path: Path, key: str, command: str
) -> None:
    missing = tmp_path / "gone.gguf"
    env = {"ASSISTANT_MODEL__BACKEND": "llamacpp", f"ASSISTANT_MODEL__{key.upper()}": str(missing)}
    if key == "lora_path":
        env["ASSISTANT_MODEL__GGUF_PATH"] = __file__  # a file that exists
    with socket.socket() as probe:  # a port that is free now
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    args = ["serve", "--port", port] if command == "serve" else ["chat", "-m", "hi"]
    done = assistant(*args, **env)
    assert done.returncode == 1, done.stderr
    assert f"file not found: {missing} (model.{key})" in done.stderr
    assert "http://" not in done.stdout  # no address announced that would only fail


@pytest.mark.parametrize("key", ["gguf_path", "lora_path"])
def test_a_model_path_that_is_a_directory_says_so(tmp_path: Path, key: str) -> None:
    env = {"ASSISTANT_MODEL__BACKEND": "llamacpp", f"ASSISTANT_MODEL__{key.upper()}": str(tmp_path)}
    if key == "lora_path":
        env["ASSISTANT_MODEL__GGUF_PATH"] = __file__
    done = assistant("chat", "-m", "hi", **env)
    assert done.returncode == 1, done.stderr
    assert f"is a directory, not a file: {tmp_path} (model.{key})" in done.stderr
    assert "file not found" not in done.stderr
    if key == "gguf_path":
        done = assistant("model", "path", **env)
        assert done.returncode == 1
        assert "is a directory, not a file" in done.stderr
