"""Every positional argument of ``assistant`` is named for the user, as in the README."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from apps.cli.main import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = list(_commands(typer.main.get_command(app)))
ARGUMENTS = [
    (path, param)
    for path, command in COMMANDS
    for param in command.params
    if param.param_type_name == "argument"
]


@pytest.mark.parametrize(
    ("path", "param"), ARGUMENTS, ids=[f"{' '.join(p)}:{a.name}" for p, a in ARGUMENTS]
)
def test_an_argument_has_an_upper_case_name_without_brackets(path: Any, param: Any) -> None:
    # Without one, "Missing argument 'thread_ids'" named the Python parameter; with
    # brackets in it, an optional one showed as "[[RUN]]" (the usage adds its own).
    assert param.metavar and param.metavar == param.metavar.upper(), (path, param.name)
    assert not set("[]{}.") & set(param.metavar), (path, param.metavar)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["threads", "delete"], "THREAD_ID"),
        (["threads", "show"], "THREAD_ID"),
        (["memory", "forget"], "KEY"),
        (["memory", "search"], "QUERY"),
        (["eval", "compare", "a"], "RUN_B"),
    ],
)
def test_a_missing_argument_is_named_as_the_usage_shows_it(args: list[str], name: str) -> None:
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2
    assert f"Missing argument '{name}'" in done.output
    assert name in CliRunner().invoke(app, [*args[:2], "--help"]).output


@pytest.mark.parametrize("kind", ["png", "ascii", "mermaid"])
def test_a_picture_onto_a_folder_says_so_in_words(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    folder = tmp_path / "taken"
    folder.mkdir()
    done = CliRunner().invoke(app, ["graph", "--format", kind, "--output", str(folder)])
    assert done.exit_code == 1
    text = " ".join(done.output.split())
    assert f"cannot write the picture {folder}: it is a folder" in text, text
    assert "Errno" not in text
