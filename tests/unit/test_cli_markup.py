"""Text from outside (a user's option, an error, a path, a model's summary) is never markup.

Rich reads ``[red]`` in a printed string as a style, so a value interpolated into a
markup string is swallowed ("[draft]" vanishes) or, with a closing tag ("[/x]"), ends the
command with a MarkupError traceback. Every such value goes through ``escape()``, or the
line is printed with ``markup=False``. The first test reads the CLI's source for an
f-string printed as markup with a value that is neither escaped nor known safe; the
others are the places that broke.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from apps.cli.main import app
from evals.report import compare, print_comparison, print_summary
from graph.settings import REPO_ROOT

runner = CliRunner()

CHECKED = [
    *sorted((REPO_ROOT / "apps" / "cli").glob("*.py")),
    REPO_ROOT / "evals" / "report.py",
]

RICH_CALLS = {"print", "add_row", "add_column", "Table", "status", "add_task", "update"}
"""Calls whose string arguments rich reads as markup (unless ``markup=False``)."""

CLEAN_CALLS = {"escape", "rich_escape", "len", "sum", "fmt_rate"}
"""Calls whose result cannot hold markup: escaped text, or a number."""

KNOWN_SAFE = {
    # numbers
    "ran",
    "chunks",
    "added_chunks",
    "replaced_chunks",
    "item.removed",
    "flagged.chunks",
    "cfg.seed",
    "run.steps_done",
    "run.total_steps",
    "record.planned or '?'",
    "len(failing) - max_failures",
    "more",
    "dataset_hash(dataset)[:16]",
    # the CLI's own words and names
    "', '.join(SAFETY_LEVELS)",
    "'|'.join(SAFETY_LEVELS)",
    "', '.join(KINDS)",
    "'red' if report.failed else 'default'",
    "HELP",
    "DEFAULT_MODEL.filename",
    "m['role']",
    "label",
    "exc.name",
    # checked before they are printed: a thread id (apps.turns.THREAD_ID), a concept of
    # prompts/concepts.yaml, a safety level, a /command name (an identifier)
    "thread_id",
    "session.thread_id",
    "concept",
    "level",
    "arg.lower()",
    "name",
}


def _markup_values(path: Path) -> list[str]:
    """``file:line: expression`` for each value interpolated into markup unescaped."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called not in RICH_CALLS:
            continue
        if any(
            k.arg == "markup" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords
        ):
            continue
        texts = [*node.args, *(k.value for k in node.keywords if k.arg in ("title", "description"))]
        for text in texts:
            parts = [text]
            while parts:  # an f-string, or f-strings joined with +
                part = parts.pop()
                if isinstance(part, ast.BinOp):
                    parts += [part.left, part.right]
                if not isinstance(part, ast.JoinedStr):
                    continue
                for value in part.values:
                    if not isinstance(value, ast.FormattedValue) or value.format_spec:
                        continue
                    inner = value.value
                    if isinstance(inner, ast.Call):
                        callee = inner.func
                        callee_name = (
                            callee.attr
                            if isinstance(callee, ast.Attribute)
                            else getattr(callee, "id", None)
                        )
                        if callee_name in CLEAN_CALLS:
                            continue
                    expression = ast.unparse(inner)
                    if expression in KNOWN_SAFE:
                        continue
                    shown = path.relative_to(REPO_ROOT)
                    found.append(f"{shown}:{value.lineno}: {{{expression}}}")
    return found


def test_no_unescaped_value_is_printed_as_markup() -> None:
    found = [line for path in CHECKED for line in _markup_values(path)]
    assert not found, (
        "values printed as rich markup without escape() (wrap them in escape(), or print "
        "with markup=False):\n" + "\n".join(found)
    )


def test_the_check_finds_an_unescaped_value(tmp_path: Path) -> None:
    sample = REPO_ROOT / "apps" / "cli" / "_sample_for_test.py"
    try:
        sample.write_text(
            "err.print(f'[red]error:[/red] {exc}')\n"
            "err.print(f'[red]bad {value!r}[/red]')\n"
            "out.print(f'wrote {path}', markup=False)\n"
            "err.print(f'[red]error:[/red] {escape(str(exc))}')\n"
            "table.add_row(f'{run.run_id}')\n",
            encoding="utf-8",
        )
        found = _markup_values(sample)
    finally:
        sample.unlink()
    assert [line.split(": ", 1)[1] for line in found] == ["{exc}", "{value}", "{run.run_id}"]


HOSTILE = ["[/red]", "[/]", "[bold]x", "a[b]c", "[link=file:///etc/passwd]x[/link]"]


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake model, in this test's data directory (tests/conftest.py sets it)."""
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    monkeypatch.setenv("ASSISTANT_SAFETY__JUDGE", "off")


@pytest.mark.parametrize("level", HOSTILE)
def test_an_unknown_safety_level_is_shown_as_typed(home: None, level: str) -> None:
    result = runner.invoke(app, ["chat", "--safety", level, "-m", "hi"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert repr(level) in result.output


@pytest.mark.parametrize("kind", HOSTILE)
def test_an_unknown_memory_kind_is_shown_as_typed(home: None, kind: str) -> None:
    result = runner.invoke(app, ["memory", "list", "--kind", kind])
    assert result.exit_code == 2, result.output
    assert repr(kind) in result.output


@pytest.mark.parametrize("level", HOSTILE)
def test_an_unknown_safety_level_in_the_chat_loop_keeps_the_session(home: None, level: str) -> None:
    result = runner.invoke(app, ["chat"], input=f"/safety {level}\n/safety\n")
    assert result.exit_code == 0, result.output
    assert repr(level) in result.output
    assert "safety level moderate" in result.output  # the loop went on to the next line


@pytest.mark.parametrize("run_id", HOSTILE)
def test_a_run_id_with_brackets_prints_as_written(run_id: str) -> None:
    from tests.support.eval_runs import passing_case, run_record

    a = run_record(run_id, [passing_case("routing")], model="m [/x]")
    b = run_record("20260101T0002Z-b", [passing_case("safety")], minutes=1)
    console = Console(record=True, width=300, color_system=None)
    print_comparison(compare(a, b), console)
    print_summary(a, console)
    text = console.export_text()
    assert run_id in text
    assert "m [/x]" in text


def test_a_summary_with_brackets_is_shown_whole(home: None) -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from graph import build_graph
    from graph.settings import load_settings
    from tools.memory import open_checkpointer

    settings = load_settings()
    thread = "0b6f6f55-5a1e-4a55-9a4b-9d5c1c1b2a10"
    summary = "we spoke of [/dim] tags and [bold]x"
    with open_checkpointer(settings) as saver:
        graph = build_graph(settings, checkpointer=saver)
        config = {"configurable": {"thread_id": thread}}
        graph.update_state(config, {"messages": [HumanMessage("hi"), AIMessage("hello")]})
        graph.update_state(config, {"summary": summary}, as_node="summarise")
    result = runner.invoke(app, ["threads", "show", thread])
    assert result.exit_code == 0, result.output
    assert summary in result.output
    as_json = runner.invoke(app, ["threads", "show", thread, "--json"])
    assert json.loads(as_json.stdout)["summary"] == summary
