"""The evaluation dashboard (HTML), the terminal summary, diffs and compare."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined, UndefinedError
from rich.console import Console
from typer.testing import CliRunner

from apps.cli.evals import eval_app
from evals.records import CaseResult, ExpectationResult, RunRecord, save_run
from evals.report import (
    PAGE_TEMPLATE,
    bars_svg,
    compare,
    diff_runs,
    histogram_svg,
    page_context,
    print_comparison,
    print_summary,
    render_html,
    template_environment,
)
from tests.support.eval_runs import run_record

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
    return run_record(
        run_id,
        cases,
        minutes=minutes,
        start=START,
        seconds=12,
        git_commit="0123456789abcdef",
        settings={"model": {"backend": "fake"}},
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


# --- the template: escaping, nothing external, strict about names -----------------------

INJECTIONS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "</pre></details><script>alert(1)</script>",
    "{{ 7 * 7 }}{% if true %}jinja{% endif %}",  # data is never rendered as a template
]
MARKUP = re.compile(r"[<>]")
# Every place run, case or model text reaches the page.
FIELDS = [
    "reply",
    "id",
    "tag",
    "corpus",
    "detail",
    "expected",
    "turn",
    "error",
    "known_failure",
    "model",
    "run_tag",
    "baseline_model",
    "baseline_reply",
]


def injected(field: str, payload: str) -> tuple[RunRecord, RunRecord]:
    """A baseline and a run with one failing case; ``payload`` sits in ``field``."""
    victim = case(
        payload if field == "id" else "victim",
        False,
        reply=payload if field == "reply" else "a reply",
        corpus=payload if field == "corpus" else "routing",
        tags=(payload,) if field == "tag" else ("alias",),
        error=payload if field == "error" else None,
        known_failure=payload if field == "known_failure" else None,
    )
    if field == "detail":
        victim.expectations[0].detail = payload
    if field == "expected":
        victim.expectations[0].expected = payload
    if field == "turn":
        victim.turns = ["hello", payload]
    current = record("20250102T040405Z-bbbbbb", [victim, case("other", True)], minutes=60)
    if field == "model":
        current.model = payload
    if field == "run_tag":
        current.tags = [payload]
    old = victim.model_copy(
        update={"reply": payload if field == "baseline_reply" else "old", "passed": True}
    )
    baseline = record("20250102T030405Z-aaaaaa", [old, case("other", True)])
    if field == "baseline_model":
        baseline.model = payload
    return baseline, current


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("field", FIELDS)
def test_injected_text_is_shown_escaped_never_as_markup(field: str, payload: str) -> None:
    baseline, current = injected(field, payload)
    html = render_html(current, baseline)
    if MARKUP.search(payload):
        assert payload not in html
    page = parse(html)
    assert not [t for t, _ in page.tags if t in ("script", "img", "iframe", "object")]
    handlers = [(t, name) for t, attrs in page.tags for name in attrs if name.startswith("on")]
    assert handlers == []
    # The structure survives (one case block, closed where it should be) and the text
    # is shown verbatim, not dropped or evaluated.
    assert sum(t == "details" for t, _ in page.tags) == 1
    assert payload in "".join(page.text)


def test_case_key_with_markup_stays_inside_its_attribute() -> None:
    evil = '"><img src=x onerror=alert(1)>'
    baseline, current = injected("id", evil)
    page = parse(render_html(current, baseline))
    keys = {attrs["data-case"] for _, attrs in page.tags if "data-case" in attrs}
    assert keys == {f"routing/{evil}"}  # one attribute value, parsed back intact


@pytest.mark.parametrize("with_baseline", [True, False])
def test_page_refers_to_nothing_outside_itself(baseline: RunRecord, with_baseline: bool) -> None:
    # A run whose own text holds no address: any URL on the page would be ours.
    html = render_html(baseline, baseline if with_baseline else None).lower()
    for needle in ("<script", "http://", "https://", "<link", "@import", "url(", "@font-face"):
        assert needle not in html, needle
    for attribute in (" src=", " href=", " srcset=", "xlink:href"):
        assert attribute not in html, attribute


@pytest.mark.parametrize("payload", INJECTIONS)
def test_no_script_even_with_injected_text(payload: str) -> None:
    baseline, current = injected("reply", payload)
    assert "<script" not in render_html(current, baseline).lower()


def test_templates_never_turn_escaping_off() -> None:
    env = template_environment()
    names = env.list_templates()
    assert PAGE_TEMPLATE in names and "charts.html.j2" in names
    assert env.loader is not None
    for name in names:
        source, _, _ = env.loader.get_source(env, name)
        assert not re.search(r"\|\s*safe\b|\{%-?\s*autoescape\b", source), name
        for needle in ("<script", "http:", "https:", "<link", "@import", "url("):
            assert needle not in source.lower(), (name, needle)
        env.get_template(name)  # compiles


def test_environment_escapes_and_is_strict(current: RunRecord) -> None:
    env = template_environment()
    assert env.undefined is StrictUndefined
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    with pytest.raises(UndefinedError):  # a typo in a template is an error, not ""
        env.from_string("{{ run.run_idd }}").render(run=current)


def test_every_context_value_is_needed(baseline: RunRecord, current: RunRecord) -> None:
    template = template_environment().get_template(PAGE_TEMPLATE)
    context = page_context(current, baseline)
    assert template.render(context) == render_html(current, baseline)
    for key in context:
        partial = {k: v for k, v in context.items() if k != key}
        with pytest.raises(UndefinedError):
            template.render(partial)


def test_histogram_counts_per_bin() -> None:
    page = parse(histogram_svg([1.0, 1.5, 2.0, 5.0], "ms", bins=2))
    titles = [t for t in page.text if "ms:" in t]
    assert titles == ["1–3 ms: 3", "3–5 ms: 1"]
    heights = [float(str(a["height"])) for t, a in page.tags if t == "rect"]
    assert heights[0] == pytest.approx(3 * heights[1], abs=0.5)  # bars scale with counts
    assert "No data." in histogram_svg([], "ms")


def test_bar_chart_scales_cuts_and_escapes_labels() -> None:
    label = "<b>" + "x" * 40
    svg = bars_svg([(label, 10.0), ("short", 5.0)], "<i>")
    assert "<b>" not in svg and "<i>" not in svg
    page = parse(svg)
    widths = [float(str(a["width"])) for t, a in page.tags if t == "rect"]
    assert widths == pytest.approx([390.0, 195.0])
    assert label[:28] in page.text and label not in "".join(page.text)
    assert "10 <i>" in page.text
    assert "No data." in bars_svg([], "ms")
