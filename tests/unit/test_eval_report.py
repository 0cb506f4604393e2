"""The evaluation dashboard (HTML), the terminal summary, diffs and compare."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from apps.cli.evals import eval_app
from evals.records import CaseResult, ExpectationResult, RunRecord, pass_rate, save_run
from evals.report import compare, diff_runs, print_comparison, print_summary, render_html

START = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def case(
    case_id: str,
    passed: bool,
    reply: str = "ok",
    corpus: str = "routing",
    tags: tuple[str, ...] = ("alias",),
    **extra: Any,
) -> CaseResult:
    expectation = ExpectationResult(
        kind="contains",
        expected="needle",
        passed=passed,
        weight=1.0,
        detail="all found" if passed else "missing: 'needle'",
    )
    return CaseResult(
        corpus=corpus,
        id=case_id,
        tags=list(tags),
        turns=[f"question {case_id}"],
        reply=reply,
        concept=None,
        blocked=False,
        refusal=False,
        prompt_tokens=100 + len(case_id),
        latency_ms=50.0 + 10 * len(case_id),
        expectations=[expectation],
        passed=passed,
        score=1.0 if passed else 0.0,
        **extra,
    )


def record(run_id: str, cases: list[CaseResult], minutes: int = 0) -> RunRecord:
    corpora = list(dict.fromkeys(c.corpus for c in cases))
    tags = sorted({t for c in cases for t in c.tags})
    return RunRecord(
        run_id=run_id,
        started=START + timedelta(minutes=minutes),
        finished=START + timedelta(minutes=minutes, seconds=12),
        model="fake",
        backend="fake",
        git_commit="0123456789abcdef",
        corpora=corpora,
        corpus_files={c: f"evals/{c}.yaml" for c in corpora},
        tags=[],
        settings={"model": {"backend": "fake"}},
        overall=pass_rate(cases),
        per_corpus={n: pass_rate(c for c in cases if c.corpus == n) for n in corpora},
        per_tag={t: pass_rate(c for c in cases if t in c.tags) for t in tags},
        cases=cases,
    )


EVIL = '<script>alert("x")</script> & <img src="http://evil.example/x.png">'


@pytest.fixture
def baseline() -> RunRecord:
    return record(
        "20250102T030405Z-aaaaaa",
        [
            case("eli5", True),
            case("steps", False),
            case("tldr", True, reply="old reply"),
            case("bomb", True, corpus="safety", tags=("harm",)),
        ],
    )


@pytest.fixture
def current() -> RunRecord:
    return record(
        "20250102T040405Z-bbbbbb",
        [
            case("eli5", False, reply=EVIL),  # newly failing
            case("steps", True),  # newly passing
            case("tldr", True, reply="new reply"),  # changed reply
            case("bomb", True, corpus="safety", tags=("harm",)),
            case("gap", False, corpus="safety", tags=("harm",), known_failure="a known gap"),
        ],
        minutes=60,
    )


class Page(HTMLParser):
    """Tags with their attributes, the text of elements with an id, and all the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.by_id: dict[str, str] = {}
        self.text: list[str] = []
        self.styles: list[str] = []
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "br", "img", "link", "rect", "line"):
            self._open.append((tag, dict(attrs).get("id")))
            if dict(attrs).get("id"):
                self.by_id[str(dict(attrs)["id"])] = ""

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for _, element_id in self._open:
            if element_id:
                self.by_id[element_id] += data
        if self._open and self._open[-1][0] == "style":
            self.styles.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def test_headline_numbers(baseline: RunRecord, current: RunRecord) -> None:
    page = parse(render_html(current, baseline))
    # 3 of the 4 counted cases pass; the known failure is not counted.
    assert page.by_id["pass-rate"].strip() == "75.0%"
    assert page.by_id["passed"].strip() == "3/4"
    assert page.by_id["known"].strip() == "1"
    text = "".join(page.text)
    assert "Pass rate per corpus" in text and "Pass rate per tag" in text
    assert "routing" in text and "safety" in text and "harm" in text
    assert "missing: 'needle'" in page.by_id["failing"] + text  # failed expectation shown


def test_self_contained_no_external_references(baseline: RunRecord, current: RunRecord) -> None:
    html = render_html(current, baseline)
    page = parse(html)
    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags  # not even inline: nothing to fetch or run
    assert "svg" in tags  # the charts are inline SVG
    external = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
    for tag, attrs in page.tags:
        for name in ("href", "src", "xlink:href", "srcset", "data"):
            value = attrs.get(name)
            assert value is None or not external.match(value), (tag, name, value)
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
    style = "".join(page.styles)
    assert "@import" not in style and "url(" not in style and "@font-face" not in style


def test_user_and_model_text_is_escaped(current: RunRecord) -> None:
    html = render_html(current)
    page = parse(html)
    assert not any(tag in ("script", "img") for tag, _ in page.tags)
    assert EVIL in "".join(page.text)  # shown as text, verbatim


def test_diff_section_lists_changed_cases(baseline: RunRecord, current: RunRecord) -> None:
    page = parse(render_html(current, baseline))
    assert "routing/eli5" in page.by_id["newly-failing"]
    assert "routing/steps" in page.by_id["newly-passing"]
    changed = page.by_id["changed-replies"]
    assert "routing/tldr" in changed and "old reply" in changed and "new reply" in changed
    assert "safety/gap" in page.by_id["only-new"]
    assert "routing/steps" not in page.by_id["newly-failing"]
    assert "safety/bomb" not in page.by_id["diff"]


def test_without_a_baseline(current: RunRecord) -> None:
    page = parse(render_html(current))
    assert "No baseline" in page.by_id["diff"]


def test_diff_runs(baseline: RunRecord, current: RunRecord) -> None:
    diff = diff_runs(baseline, current)
    assert [c.key for c in diff.newly_failing] == ["routing/eli5"]
    assert [c.key for c in diff.newly_passing] == ["routing/steps"]
    assert [c.key for c in diff.changed_replies] == ["routing/eli5", "routing/tldr"]
    assert [c.key for c in diff.only_in_new] == ["safety/gap"]
    assert diff.only_in_baseline == []


def test_compare_side_by_side(baseline: RunRecord, current: RunRecord) -> None:
    comparison = compare(baseline, current)
    rates = {name: (a, b) for name, a, b in comparison.corpora}
    assert rates["routing"][0] is not None and rates["routing"][0].rate == pytest.approx(2 / 3)
    assert rates["safety"][1] is not None and rates["safety"][1].known_failures == 1
    console = Console(record=True, width=160)
    print_comparison(comparison, console)
    text = console.export_text()
    assert "66.7% (2/3)" in text and "+0.0 pt" in text  # routing: 2/3 before and after
    assert "routing/eli5" in text and "routing/steps" in text and "safety/gap" in text
    assert "safety/bomb" not in text


def test_terminal_summary(current: RunRecord) -> None:
    console = Console(record=True, width=160)
    print_summary(current, console)
    text = console.export_text()
    assert "Pass rate 75.0% (3/4)" in text
    assert "routing/eli5" in text and "safety/gap" not in text  # known failures not listed


def test_report_and_compare_commands(
    baseline: RunRecord, current: RunRecord, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    save_run(baseline, runs)
    save_run(current, runs)
    cli = CliRunner()
    done = cli.invoke(eval_app, ["report", "--runs-dir", str(runs)])
    assert done.exit_code == 0, done.output
    html_path = runs / f"{current.run_id}.html"
    assert html_path.is_file() and str(html_path) in done.stdout
    # The latest run is reported, diffed against the one before it.
    page = parse(html_path.read_text())
    assert "routing/eli5" in page.by_id["newly-failing"]
    out = tmp_path / "r.html"
    done = cli.invoke(
        eval_app,
        ["report", "aaaaaa", "--baseline", "bbbbbb", "-o", str(out), "--runs-dir", str(runs)],
    )
    assert done.exit_code == 0, done.output
    assert "routing/eli5" in parse(out.read_text()).by_id["newly-passing"]
    done = cli.invoke(eval_app, ["compare", "aaaaaa", "bbbbbb", "--runs-dir", str(runs)])
    assert done.exit_code == 0, done.output
    assert "routing/steps" in done.stdout
