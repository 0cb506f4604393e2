"""Pictures of the graph (PNG, Mermaid, ASCII) and the `assistant graph` command, offline."""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from apps import pictures
from apps.cli.main import app
from apps.pictures import PictureError, check_format, draw, pipeline, write_picture
from graph.settings import Settings

NODES = [
    "__start__",
    "check_input",
    "refuse",
    "reject",
    "detect_alias",
    "retrieve",
    "recall",
    "generate",
    "check_output",
    "remember",
    "summarise",
    "__end__",
]
CONDITIONAL = [
    ("check_input", "detect_alias"),
    ("check_input", "refuse"),
    ("check_input", "reject"),
    ("generate", "check_output"),
    ("generate", "reject"),
    ("remember", "summarise"),
    ("remember", "__end__"),
]
PLAIN = [
    ("__start__", "check_input"),
    ("detect_alias", "retrieve"),
    ("retrieve", "recall"),
    ("recall", "generate"),
    ("check_output", "remember"),
    ("refuse", "__end__"),
    ("reject", "__end__"),
    ("summarise", "__end__"),
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def graph(make_settings: Callable[..., Settings]) -> Any:
    return pipeline(make_settings())


def png_size(data: bytes) -> tuple[int, int]:
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def mermaid_body(text: str) -> list[str]:
    """The Mermaid lines after the optional ``---`` front matter, stripped."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines and lines[0] == "---":
        lines = lines[lines.index("---", 1) + 1 :]
    return lines


def test_ascii_shows_every_node(graph: Any) -> None:
    text = draw(graph, "ascii")
    assert isinstance(text, str)
    for node in NODES:
        assert f"| {node} |" in text, node


def test_mermaid_has_the_header_and_every_edge(graph: Any) -> None:
    text = draw(graph, "mermaid")
    assert isinstance(text, str)
    body = mermaid_body(text)
    assert body[0] == "graph TD;"
    for source, target in CONDITIONAL:
        assert f"{source} -.-> {target};" in body, (source, target)
    for source, target in PLAIN:
        assert f"{source} --> {target};" in body, (source, target)
    # The routers return Literal node names: the real branches only, not an edge to every
    # node (which is what an unannotated router gives).
    edges = [line for line in body if "-->" in line or "-.->" in line]
    assert len(edges) == len(CONDITIONAL) + len(PLAIN)


def test_png_is_a_real_picture(graph: Any) -> None:
    data = draw(graph, "png")
    assert isinstance(data, bytes)
    assert data.startswith(PNG_SIGNATURE)
    assert 10_000 < len(data) < 2_000_000
    width, height = png_size(data)
    assert 300 <= width <= 3000 and 300 <= height <= 3000
    assert height > width  # a top-down pipeline


def test_drawing_never_loads_a_model(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("drawing must not load a model")

    monkeypatch.setattr("tools.models.loader.get_chat_model", no_model)
    monkeypatch.setattr("graph.deps.get_chat_model", no_model)
    # The configured backend is llama.cpp on a file that does not exist: never touched.
    settings = make_settings(model={"backend": "llamacpp", "gguf_path": "/nonexistent.gguf"})
    assert "check_input" in draw(pipeline(settings), "ascii")


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("png", lambda data: data.startswith(PNG_SIGNATURE)),
        ("mermaid", lambda data: b"check_input -.-> refuse;" in data),
        ("ascii", lambda data: b"| summarise |" in data),
    ],
)
def test_write_picture(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    fmt: pictures.Format,
    check: Callable[[bytes], bool],
) -> None:
    target = tmp_path / f"graph.{fmt}"
    assert write_picture(target, fmt, settings=make_settings()) == target
    assert check(target.read_bytes())


@pytest.mark.parametrize("fmt", ["png", "mermaid"])
@pytest.mark.parametrize("under", ["new/dir", "a-file"])
def test_write_picture_refuses_a_missing_folder_and_creates_none(
    tmp_path: Path, make_settings: Callable[..., Settings], fmt: pictures.Format, under: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / under / f"graph.{fmt}"
    what = "is not a folder" if under == "a-file" else "no such folder"
    with pytest.raises(PictureError, match=f"{what}: {re.escape(str(target.parent))}"):
        write_picture(target, fmt, settings=make_settings())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("fmt", ["PNG", " Mermaid ", "ascii"])
def test_format_names_are_forgiving(fmt: str) -> None:
    assert check_format(fmt) == fmt.strip().lower()


def test_unknown_format_is_a_clear_error(graph: Any) -> None:
    with pytest.raises(PictureError, match="use png, mermaid, ascii"):
        draw(graph, "svg")  # type: ignore[call-overload]


@pytest.mark.parametrize(("fmt", "package"), [("png", "pygraphviz"), ("ascii", "grandalf")])
def test_missing_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, graph: Any, fmt: pictures.Format, package: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(PictureError, match=f"pip install .*{package}"):
        draw(graph, fmt)


def test_mermaid_needs_no_extra_package(monkeypatch: pytest.MonkeyPatch, graph: Any) -> None:
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    monkeypatch.setitem(sys.modules, "grandalf", None)
    assert "graph TD;" in draw(graph, "mermaid")


# The command -------------------------------------------------------------------------


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["graph", *args])

    return invoke


def test_cli_ascii_to_stdout(run: Callable[..., Any]) -> None:
    result = run("--format", "ascii")
    assert result.exit_code == 0, result.output
    for node in NODES:
        assert node in result.stdout
    assert not list(Path.cwd().iterdir())  # nothing written


def test_cli_mermaid_to_stdout(run: Callable[..., Any]) -> None:
    result = run("-f", "mermaid")
    assert result.exit_code == 0, result.output
    assert mermaid_body(result.stdout)[0] == "graph TD;"
    assert "remember -.-> summarise;" in result.stdout


def test_cli_png_defaults_to_graph_png(run: Callable[..., Any]) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    assert "wrote graph.png" in result.stdout
    assert (Path.cwd() / "graph.png").read_bytes().startswith(PNG_SIGNATURE)


def test_cli_png_to_an_existing_folder(run: Callable[..., Any]) -> None:
    (Path.cwd() / "docs").mkdir()
    result = run("--format", "png", "--output", "docs/graph.png")
    assert result.exit_code == 0, result.output
    assert "docs/graph.png" in result.stdout
    assert (Path.cwd() / "docs" / "graph.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("fmt", ["png", "mermaid"])
def test_cli_refuses_a_missing_folder_instead_of_creating_it(
    run: Callable[..., Any], fmt: str
) -> None:
    result = run("-f", fmt, "-o", f"nonexistent/dir/x.{'png' if fmt == 'png' else 'mmd'}")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "no such folder: nonexistent/dir" in message
    assert "Traceback" not in result.output
    assert not list(Path.cwd().iterdir())  # no folder created


@pytest.mark.parametrize("fmt", ["mermaid", "ascii"])
def test_cli_text_to_a_file(run: Callable[..., Any], fmt: str) -> None:
    result = run("-f", fmt, "-o", f"graph.{fmt}")
    assert result.exit_code == 0, result.output
    assert "check_input" in (Path.cwd() / f"graph.{fmt}").read_text()


def test_cli_bad_format(run: Callable[..., Any]) -> None:
    result = run("--format", "svg")
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert "unknown picture format 'svg': use png, mermaid, ascii" in message
    assert "Traceback" not in result.output


def test_cli_unwritable_output(run: Callable[..., Any]) -> None:
    Path("taken").mkdir()
    result = run("--output", "taken")
    assert result.exit_code == 1
    assert "cannot write the picture" in result.stderr


def test_cli_missing_package(run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    result = run("--format", "png")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "pip install -c constraints.txt pygraphviz" in message
    assert result.exception is None or isinstance(result.exception, SystemExit)
