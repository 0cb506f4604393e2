"""Reports on evaluation runs: a self-contained HTML dashboard, a terminal summary, diffs.

The HTML page has inline CSS and inline SVG charts only: no fonts, scripts, stylesheets
or images are fetched from anywhere, so it opens offline. Every piece of user or model
text is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

from evals.corpus import EvalError
from evals.records import CaseResult, PassRate, RunRecord, Status, status

# --- diffs -------------------------------------------------------------------------------


@dataclass
class CaseChange:
    """One case whose result differs between two runs."""

    corpus: str
    id: str
    before: CaseResult | None
    after: CaseResult | None

    @property
    def key(self) -> str:
        """``corpus/id``."""
        return f"{self.corpus}/{self.id}"

    @property
    def status_before(self) -> Status | None:
        """Status in the first run (None: not in it)."""
        return status(self.before) if self.before else None

    @property
    def status_after(self) -> Status | None:
        """Status in the second run (None: not in it)."""
        return status(self.after) if self.after else None


@dataclass
class RunDiff:
    """What changed from a baseline run to a new one, case by case."""

    newly_failing: list[CaseChange] = field(default_factory=list)
    newly_passing: list[CaseChange] = field(default_factory=list)
    changed_replies: list[CaseChange] = field(default_factory=list)
    only_in_baseline: list[CaseChange] = field(default_factory=list)
    only_in_new: list[CaseChange] = field(default_factory=list)

    @property
    def changes(self) -> list[CaseChange]:
        """Every case that differs in any way, each once."""
        seen: dict[str, CaseChange] = {}
        for group in (
            self.newly_failing,
            self.newly_passing,
            self.changed_replies,
            self.only_in_baseline,
            self.only_in_new,
        ):
            for change in group:
                seen.setdefault(change.key, change)
        return list(seen.values())


def diff_runs(baseline: RunRecord, new: RunRecord) -> RunDiff:
    """Compare two runs case by case (matched on corpus and id).

    A case is newly failing when it passed in the baseline and does not now, newly passing
    the other way round; a changed reply is any case run in both whose reply differs.
    """
    before = {(c.corpus, c.id): c for c in baseline.cases}
    after = {(c.corpus, c.id): c for c in new.cases}
    diff = RunDiff()
    for key, case in after.items():
        old = before.get(key)
        change = CaseChange(key[0], key[1], old, case)
        if old is None:
            diff.only_in_new.append(change)
            continue
        if old.passed and not case.passed:
            diff.newly_failing.append(change)
        elif case.passed and not old.passed:
            diff.newly_passing.append(change)
        if old.reply != case.reply:
            diff.changed_replies.append(change)
    diff.only_in_baseline = [
        CaseChange(k[0], k[1], c, None) for k, c in before.items() if k not in after
    ]
    return diff


@dataclass
class Comparison:
    """Two runs side by side: pass rates per corpus and the cases that differ."""

    run_a: RunRecord
    run_b: RunRecord
    corpora: list[tuple[str, PassRate | None, PassRate | None]]
    overall: tuple[PassRate, PassRate]
    diff: RunDiff


def compare(run_a: RunRecord, run_b: RunRecord) -> Comparison:
    """Compare two runs (two models or two settings over the same corpora)."""
    names = list(dict.fromkeys([*run_a.per_corpus, *run_b.per_corpus]))
    return Comparison(
        run_a=run_a,
        run_b=run_b,
        corpora=[(n, run_a.per_corpus.get(n), run_b.per_corpus.get(n)) for n in names],
        overall=(run_a.overall, run_b.overall),
        diff=diff_runs(run_a, run_b),
    )


# --- terminal ----------------------------------------------------------------------------


def fmt_rate(rate: PassRate | None) -> str:
    """``87.5% (7/8)``, or ``—`` when nothing was counted."""
    if rate is None or rate.rate is None:
        return "—"
    known = f" +{rate.known_failures} known" if rate.known_failures else ""
    return f"{rate.rate:.1%} ({rate.passed}/{rate.total}){known}"


def _rate_table(title: str, rates: dict[str, PassRate]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("name")
    table.add_column("pass rate", justify="right")
    table.add_column("score", justify="right")
    for name, rate in rates.items():
        score = "—" if rate.score is None else f"{rate.score:.2f}"
        table.add_row(rich_escape(name), fmt_rate(rate), score)
    return table


def print_summary(run: RunRecord, console: Console, *, max_failures: int = 20) -> None:
    """Print a run's headline numbers: overall, per corpus, per tag, and the failures."""
    duration = (run.finished - run.started).total_seconds()
    console.print(
        f"[bold]Pass rate {fmt_rate(run.overall)}[/bold]  ·  model {rich_escape(run.model)}  ·  "
        f"{len(run.cases)} case(s) in {duration:.1f} s  ·  run {run.run_id}",
        highlight=False,
    )
    console.print(_rate_table("Per corpus", run.per_corpus))
    if run.per_tag:
        console.print(_rate_table("Per tag", run.per_tag))
    failing = [c for c in run.cases if not c.passed and not c.known_failure]
    for case in failing[:max_failures]:
        why = case.error or "; ".join(
            f"{e.kind}: {e.detail}" for e in case.expectations if not e.passed
        )
        console.print(
            f"  [red]✗[/red] {rich_escape(case.corpus)}/{rich_escape(case.id)}: {rich_escape(why)}",
            highlight=False,
            soft_wrap=True,
        )
    if len(failing) > max_failures:
        console.print(f"  … and {len(failing) - max_failures} more (see the HTML report)")
    # A known failure that passes is a gap that closed: its mark can go from the corpus.
    fixed = [c for c in run.cases if c.known_failure and c.passed]
    if fixed:
        listed = ", ".join(f"{c.corpus}/{c.id}" for c in fixed[:max_failures])
        more = f" and {len(fixed) - max_failures} more" if len(fixed) > max_failures else ""
        console.print(
            f"  [yellow]{len(fixed)} known failure(s) now pass:[/yellow] "
            f"{rich_escape(listed)}{more}",
            highlight=False,
            soft_wrap=True,
        )


def print_comparison(comparison: Comparison, console: Console) -> None:
    """Print two runs side by side and the cases whose results differ."""
    a, b = comparison.run_a, comparison.run_b
    table = Table(show_edge=False)
    table.add_column("corpus")
    table.add_column(f"A {rich_escape(a.model)} ({a.run_id})", justify="right")
    table.add_column(f"B {rich_escape(b.model)} ({b.run_id})", justify="right")
    table.add_column("Δ", justify="right")
    rows = [*comparison.corpora, ("overall", *comparison.overall)]
    for name, left, right in rows:
        table.add_row(rich_escape(name), fmt_rate(left), fmt_rate(right), _delta(left, right))
    console.print(table)
    changes = comparison.diff.changes
    if not changes:
        console.print("No case differs.")
        return
    cases = Table(title=f"{len(changes)} case(s) differ", title_justify="left", show_edge=False)
    cases.add_column("case")
    cases.add_column("A")
    cases.add_column("B")
    cases.add_column("reply changed")
    for change in changes:
        replies = change.before and change.after and change.before.reply != change.after.reply
        cases.add_row(
            rich_escape(change.key),
            change.status_before or "—",
            change.status_after or "—",
            "yes" if replies else "",
        )
    console.print(cases)


def _delta(left: PassRate | None, right: PassRate | None) -> str:
    if left is None or right is None or left.rate is None or right.rate is None:
        return ""
    return f"{(right.rate - left.rate) * 100:+.1f} pt"


# --- HTML --------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1d2330;background:#fff}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dde;padding-bottom:.3rem}
.meta{color:#667;font-size:.9rem}
.headline{display:flex;gap:2rem;align-items:baseline;margin:1.2rem 0}
.big{font-size:3rem;font-weight:700}
.good{color:#1a7f37}.bad{color:#c62828}.warn{color:#9a6700}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eef;vertical-align:top}
th{background:#f5f6fa}td.num{text-align:right;white-space:nowrap}
pre{white-space:pre-wrap;background:#f7f7f9;padding:.5rem;border-radius:4px;margin:.3rem 0;
font-size:.85rem;max-height:20rem;overflow:auto}
details{margin:.4rem 0;border:1px solid #eee;border-radius:4px;padding:.3rem .6rem}
summary{cursor:pointer}.tag{background:#eef;border-radius:3px;padding:0 .3rem;
font-size:.8rem;margin-right:.2rem}
svg text{font-family:inherit;font-size:11px;fill:#334}
"""


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _rate_class(value: float | None) -> str:
    if value is None:
        return ""
    return "good" if value >= 0.9 else "warn" if value >= 0.7 else "bad"


def _bar(rate: float | None, width: int = 160) -> str:
    filled = 0 if rate is None else round(rate * width)
    return (
        f'<svg width="{width}" height="12" role="img" aria-label="{_pct(rate)}">'
        f'<rect width="{width}" height="12" fill="#eceef4"/>'
        f'<rect width="{filled}" height="12" fill="#2f80ed"/></svg>'
    )


def _rates_section(title: str, rates: dict[str, PassRate]) -> str:
    if not rates:
        return ""
    rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="num {_rate_class(r.rate)}">{_pct(r.rate)}</td>'
        f'<td class="num">{r.passed}/{r.total}</td><td class="num">{r.known_failures}</td>'
        f'<td class="num">{"—" if r.score is None else f"{r.score:.2f}"}</td>'
        f"<td>{_bar(r.rate)}</td></tr>"
        for name, r in rates.items()
    )
    return (
        f"<h2>{escape(title)}</h2><table><tr><th>name</th><th>pass rate</th><th>passed</th>"
        f"<th>known failures</th><th>score</th><th></th></tr>{rows}</table>"
    )


def histogram_svg(values: Sequence[float], unit: str, bins: int = 12) -> str:
    """An inline SVG histogram of the values (counts per equal-width bin)."""
    if not values:
        return "<p>No data.</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int((value - low) / span * bins))] += 1
    width, height, pad = 640, 180, 28
    bar_w = (width - 2 * pad) / bins
    top = max(counts)
    bars = []
    for i, count in enumerate(counts):
        h = (height - 2 * pad) * count / top
        x, y = pad + i * bar_w, height - pad - h
        start = low + span * i / bins
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
            f'fill="#2f80ed"><title>{start:.0f}–{start + span / bins:.0f} {escape(unit)}: '
            f"{count}</title></rect>"
        )
        if count:
            bars.append(f'<text x="{x + bar_w / 2 - 4:.1f}" y="{y - 3:.1f}">{count}</text>')
    axis = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="#99a"/><text x="{pad}" y="{height - 8}">{low:.0f} {escape(unit)}</text>'
        f'<text x="{width - pad - 70}" y="{height - 8}">{high:.0f} {escape(unit)}</text>'
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="histogram of '
        f'{escape(unit)}">{"".join(bars)}{axis}</svg>'
    )


def bars_svg(items: Sequence[tuple[str, float]], unit: str) -> str:
    """An inline SVG horizontal bar chart of labelled values."""
    if not items:
        return "<p>No data.</p>"
    row, label_w, width = 20, 170, 640
    top = max(v for _, v in items) or 1.0
    parts = []
    for i, (label, value) in enumerate(items):
        y = i * row
        w = (width - label_w - 80) * value / top
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(label[:28])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="#56ccf2"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{value:.0f} {escape(unit)}</text>'
        )
    return (
        f'<svg width="{width}" height="{row * len(items)}" role="img" '
        f'aria-label="bars of {escape(unit)}">{"".join(parts)}</svg>'
    )


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _charts(run: RunRecord) -> str:
    ran = [c for c in run.cases if c.error is None]
    latencies = [c.latency_ms for c in ran if c.latency_ms is not None]
    tokens = [float(c.prompt_tokens) for c in ran if c.prompt_tokens is not None]
    per_corpus_latency = [
        (name, _mean(c.latency_ms or 0 for c in ran if c.corpus == name)) for name in run.corpora
    ]
    per_corpus_tokens = [
        (name, _mean(c.prompt_tokens or 0 for c in ran if c.corpus == name)) for name in run.corpora
    ]
    return (
        '<h2 id="charts">Latency and tokens</h2>'
        f"<h3>Latency of the last turn (ms), {len(latencies)} cases</h3>"
        f"{histogram_svg(latencies, 'ms')}"
        f"<h3>Mean latency per corpus</h3>{bars_svg(per_corpus_latency, 'ms')}"
        f"<h3>Prompt tokens, {len(tokens)} cases</h3>{histogram_svg(tokens, 'tokens')}"
        f"<h3>Mean prompt tokens per corpus</h3>{bars_svg(per_corpus_tokens, 'tokens')}"
    )


def _tags(tags: Iterable[str]) -> str:
    return "".join(f'<span class="tag">{escape(t)}</span>' for t in tags)


def _case_block(case: CaseResult) -> str:
    failed = [e for e in case.expectations if not e.passed]
    rows = "".join(
        f"<tr><td>{escape(e.kind)}</td><td><code>{escape(_show(e.expected))}</code></td>"
        f"<td>{escape(e.detail)}</td><td class='num'>{e.weight:g}</td></tr>"
        for e in failed
    )
    table = (
        f"<table><tr><th>failed expectation</th><th>expected</th><th>seen</th>"
        f"<th>weight</th></tr>{rows}</table>"
        if rows
        else ""
    )
    error = f'<p class="bad">error: {escape(case.error)}</p>' if case.error else ""
    known = (
        f'<p class="warn">known failure: {escape(case.known_failure)}</p>'
        if case.known_failure
        else ""
    )
    turns = "".join(f"<pre>user: {escape(t)}</pre>" for t in case.turns)
    reply = "" if case.reply is None else f"<pre>reply: {escape(case.reply)}</pre>"
    return (
        f'<details class="case" data-case="{escape(case.corpus)}/{escape(case.id)}">'
        f"<summary><b>{escape(case.corpus)}/{escape(case.id)}</b> {_tags(case.tags)} "
        f"score {case.score:.2f}</summary>{error}{known}{turns}{reply}{table}</details>"
    )


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _diff_section(run: RunRecord, baseline: RunRecord | None) -> str:
    if baseline is None:
        return '<section id="diff"><h2>Diff</h2><p>No baseline run to compare with.</p></section>'
    diff = diff_runs(baseline, run)

    def group(title: str, slug: str, changes: list[CaseChange], replies: bool) -> str:
        if not changes:
            return f'<h3>{escape(title)}: none</h3><ul id="{slug}"></ul>'
        items = []
        for ch in changes:
            detail = ""
            if replies and ch.before and ch.after:
                detail = (
                    f"<pre>before: {escape(ch.before.reply or '')}</pre>"
                    f"<pre>after: {escape(ch.after.reply or '')}</pre>"
                )
            items.append(
                f'<li data-case="{escape(ch.key)}"><b>{escape(ch.key)}</b> '
                f"({escape(str(ch.status_before))} → {escape(str(ch.status_after))}){detail}</li>"
            )
        return f'<h3>{escape(title)}: {len(changes)}</h3><ul id="{slug}">{"".join(items)}</ul>'

    return (
        f'<section id="diff"><h2>Diff against {escape(baseline.run_id)}</h2>'
        f'<p class="meta">baseline model {escape(baseline.model)}, pass rate '
        f"{_pct(baseline.overall.rate)} → {_pct(run.overall.rate)}</p>"
        + group("Newly failing", "newly-failing", diff.newly_failing, False)
        + group("Newly passing", "newly-passing", diff.newly_passing, False)
        + group("Changed replies", "changed-replies", diff.changed_replies, True)
        + group("Only in this run", "only-new", diff.only_in_new, False)
        + group("Only in the baseline", "only-baseline", diff.only_in_baseline, False)
        + "</section>"
    )


def render_html(run: RunRecord, baseline: RunRecord | None = None) -> str:
    """The dashboard of a run as one self-contained HTML page (nothing external)."""
    overall = run.overall
    failing = [c for c in run.cases if not c.passed and not c.known_failure]
    known = [c for c in run.cases if c.known_failure and not c.passed]
    duration = (run.finished - run.started).total_seconds()
    commit = run.git_commit[:12] if run.git_commit else "unknown"
    filters = f" · tags {escape(', '.join(run.tags))}" if run.tags else ""
    head = (
        f"<h1>Evaluation run {escape(run.run_id)}</h1>"
        f'<p class="meta">model {escape(run.model)} ({escape(run.backend)}) · commit '
        f"{escape(commit)} · {escape(run.started.isoformat(timespec='seconds'))} · "
        f"{duration:.1f} s · corpora {escape(', '.join(run.corpora))}{filters}</p>"
        f'<div class="headline"><div><div id="pass-rate" class="big {_rate_class(overall.rate)}">'
        f'{_pct(overall.rate)}</div>pass rate</div><div><div class="big" id="passed">'
        f"{overall.passed}/{overall.total}</div>cases passed</div>"
        f'<div><div class="big" id="score">'
        f"{'—' if overall.score is None else f'{overall.score:.2f}'}</div>mean score</div>"
        f'<div><div class="big" id="known">{overall.known_failures}</div>known failures</div>'
        "</div>"
    )
    failing_html = (
        f'<section id="failing"><h2>Failing cases ({len(failing)})</h2>'
        + ("".join(_case_block(c) for c in failing) or "<p>None.</p>")
        + "</section>"
    )
    known_html = (
        f'<h2 id="known-failures">Known failures ({len(known)})</h2>'
        + "".join(_case_block(c) for c in known)
        if known
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Eval {escape(run.run_id)}</title><style>{CSS}</style></head><body>"
        f"{head}{_rates_section('Pass rate per corpus', run.per_corpus)}"
        f"{_rates_section('Pass rate per tag', run.per_tag)}"
        f"{failing_html}{known_html}{_charts(run)}{_diff_section(run, baseline)}"
        "</body></html>\n"
    )


def write_report(run: RunRecord, output: Path, baseline: RunRecord | None = None) -> Path:
    """Render the dashboard into ``output`` and return the path.

    Raises:
        EvalError: The file cannot be written.
    """
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render_html(run, baseline), encoding="utf-8")
    except OSError as exc:
        raise EvalError(f"cannot write the report {output}: {exc}") from None
    return output
