"""``assistant eval``: run evaluation corpora, render the dashboard, compare runs.

``assistant eval [CORPUS...]`` is short for ``assistant eval run [CORPUS...]``: the group
inserts ``run`` when the first argument is not one of its commands (a corpus named like a
command, say ``report``, needs the long form).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from apps.cli.console import cli_settings, err, out, why_not_written
from evals.corpus import CORPORA_DIR, Corpus, EvalError, EvalModelError, load_corpora
from evals.records import (
    CaseResult,
    RunRecord,
    check_runs_dir,
    covers,
    default_runs_dir,
    find_run,
    load_run,
    previous_run,
    run_schema,
    save_run,
)


class _RunByDefault(TyperGroup):
    """A group whose default command is ``run``, so ``eval CORPUS...`` works."""

    # ctx is typer's own (vendored) click Context; Any keeps this independent of where
    # typer keeps click.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Insert ``run`` unless the first argument names a command or asks for help."""
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_RunByDefault,
    help="Evaluate the assistant on the corpora in evals/corpora/: run, report, compare. "
    "`assistant eval [CORPUS]... [OPTIONS]` is short for `assistant eval run ...`.",
)


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def check_tags(corpora: Sequence[Corpus], tags: Sequence[str]) -> None:
    """Refuse a ``--tag`` that no case of the chosen corpora carries, listing those they do.

    Every given tag is checked, not only whether some case is left: with ``-t alias -t
    nearmiss`` a typo would otherwise narrow the run to the alias cases without a word.

    Raises:
        EvalError: One or more tags are on no case; the message names them and the tags
            the corpora have.
    """
    known = sorted({t for corpus in corpora for case in corpus.cases for t in case.tags})
    unknown = [t for t in dict.fromkeys(tags) if t not in known]
    if not unknown:
        return
    names = ", ".join(corpus.name for corpus in corpora)
    raise EvalError(
        f"unknown tag{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
        f"no case of {names} has {'them' if len(unknown) > 1 else 'it'} "
        f"(tags there: {', '.join(known) or 'none'})"
    )


RunsDirOption = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where run records are (default: <data_dir>/evals/runs)."),
]


@eval_app.command("run")
def run_command(
    corpora: Annotated[
        list[str] | None,
        typer.Argument(
            help="Corpus names (routing = evals/corpora/routing.yaml) or files; "
            "none = all in evals/corpora/ (see --evals-dir).",
            metavar="CORPUS",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="fake, default (the default GGUF) or a GGUF path; none = configured backend.",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", help="Only cases with this tag (repeatable: any of them)."),
    ] = None,
    min_pass_rate: Annotated[
        float | None,
        typer.Option(
            "--min-pass-rate",
            min=0.0,
            max=1.0,
            help="Exit 1 when the overall pass rate (0..1) is under this.",
        ),
    ] = None,
    runs_dir: RunsDirOption = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Cases at a time (default: CPUs). Fake model only: above 1 with a real "
            "model is refused (it runs one case at a time).",
        ),
    ] = None,
    evals_dir: Annotated[
        Path, typer.Option("--evals-dir", help="Where corpus names are looked up.")
    ] = CORPORA_DIR,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run record as JSON instead.")
    ] = False,
) -> None:
    """Run corpora through the real graph, save the run record, print the summary.

    Exit status: 0, or 1 when the pass rate is under --min-pass-rate (or the model cannot
    be loaded), 2 for a bad corpus, option, setting or runs directory, 130 on Ctrl-C (the
    cases finished so far are saved as a run record marked interrupted).
    """
    settings = cli_settings()
    directory = runs_dir or default_runs_dir(settings)
    try:
        # Everything the corpora files can tell is checked before any work (the graph's
        # import, the runs directory, a model): corpus names, their contents, the tags.
        if not corpora and not evals_dir.is_dir():
            # "no corpora in X" read as an empty folder; X is not one at all.
            what = "a file, not a folder" if evals_dir.exists() else "no such folder"
            raise EvalError(f"--evals-dir {evals_dir}: {what}")
        loaded = load_corpora(corpora or [], evals_dir)
        check_tags(loaded, tag or [])
    except EvalError as exc:
        raise _fail(exc) from None
    from evals.runner import RunInterrupted, run_evals, run_settings  # the graph: to run only

    try:
        # Before any case runs: a directory that cannot take the record is found now,
        # not after an hour of cases.
        check_runs_dir(directory)
        run_settings(settings, model, jobs)  # a bad --model or -j, before the progress bar
    except EvalError as exc:
        raise _fail(exc) from None
    total = sum(len(c) for c in loaded)
    with Progress(
        TextColumn("{task.description}", style="cyan"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cases · [red]{task.fields[failed]} failed[/red]"),
        TimeElapsedColumn(),
        console=err,
        # Off a terminal a line per case reports progress; the bar would be printed once
        # more as it stood when the run stopped ("0/382 cases" before an error).
        disable=as_json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("evaluating", total=total, failed=0)
        failed = 0

        def show(result: CaseResult, done: int, planned: int) -> None:
            nonlocal failed
            failed += not result.passed and not result.known_failure
            progress.update(
                task,
                total=planned,
                completed=done,
                failed=failed,
                description=escape(f"{result.corpus}/{result.id}"[:32]),
            )
            if not err.is_terminal and not as_json:
                # A log file gets no progress bar: one line per case shows how far it is.
                verdict = "pass" if result.passed else "known" if result.known_failure else "FAIL"
                err.print(
                    f"[{done}/{planned}] {result.corpus}/{result.id}: {verdict}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )

        try:
            record = run_evals(
                loaded, settings, model=model, tags=tag or [], jobs=jobs, on_case=show
            )
        except EvalError as exc:
            progress.stop()
            raise _fail(exc, 1 if isinstance(exc, EvalModelError) else 2) from None
        except RunInterrupted as stop:
            progress.stop()
            _save_interrupted(stop.record, directory)
            raise typer.Exit(130) from None
    try:
        path = save_run(record, directory)
    except EvalError as exc:
        raise _fail(exc, 1) from None
    if as_json:
        out.print_json(record.model_dump_json())
    else:
        from evals.report import print_summary

        print_summary(record, out)
    err.print(f"run record: {escape(str(path))}", highlight=False, soft_wrap=True)
    rate = record.overall.rate
    if min_pass_rate is not None and (rate is None or rate < min_pass_rate):
        err.print(
            f"[red]pass rate {0.0 if rate is None else rate:.1%} is under the minimum "
            f"{min_pass_rate:.1%}[/red]"
        )
        raise typer.Exit(1)


def _save_interrupted(record: RunRecord, directory: Path) -> None:
    """Save the cases a Ctrl-C left finished, and say where (nothing saved if none ran)."""
    ran = f"{len(record.cases)} of {record.planned} cases"
    if not record.cases:
        err.print(f"interrupted: {ran} finished, no run record saved", highlight=False)
        return
    try:
        path = save_run(record, directory)
    except EvalError as exc:
        err.print(f"interrupted: {ran} finished; {escape(str(exc))}", highlight=False)
        return
    err.print(
        f"interrupted: {ran} finished; partial run record (marked interrupted): "
        f"{escape(str(path))}",
        highlight=False,
        soft_wrap=True,
    )


def _note_interrupted(record: RunRecord) -> None:
    """Say that a run stopped early: its pass rates cover only the cases that ran."""
    if record.interrupted:
        err.print(
            f"[yellow]note:[/yellow] run {escape(record.run_id)} was interrupted: "
            f"{len(record.cases)} of {record.planned or '?'} cases ran",
            highlight=False,
            soft_wrap=True,
        )


def _note_other_cases(a: RunRecord, b: RunRecord) -> None:
    """Say when two runs ran different corpora or tags: their overall rates do not compare."""
    if covers(a) == covers(b):
        return

    def what(run: RunRecord) -> str:
        corpora, tags = covers(run)
        return ", ".join(corpora) + (f" (tags {', '.join(tags)})" if tags else "")

    shared = sorted(set(a.corpora) & set(b.corpora))
    err.print(
        f"[yellow]note:[/yellow] the runs ran different cases: {escape(a.run_id)} "
        f"{escape(what(a))}; {escape(b.run_id)} {escape(what(b))}. The overall rates are "
        "not comparable"
        + (f"; compare the corpora both ran: {escape(', '.join(shared))}" if shared else "")
        + ".",
        highlight=False,
        soft_wrap=True,
    )


def _warn_skipped(path: Path, exc: EvalError) -> None:
    err.print(
        f"[yellow]warning:[/yellow] skipped {escape(path.name)}: {escape(str(exc))}",
        highlight=False,
        soft_wrap=True,
    )


@eval_app.command("report")
def report_command(
    run: Annotated[
        str | None,
        typer.Argument(
            help="A run file or run id (default: the latest run).",
            show_default=False,
            metavar="RUN",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", help="Run to diff against (default: the run before RUN, if any)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file (default: next to the run, .html)."),
    ] = None,
    runs_dir: RunsDirOption = None,
) -> None:
    """Render a run as a self-contained HTML dashboard (opens offline) and print its path."""
    from evals.report import print_summary, write_report

    settings = cli_settings()
    directory = runs_dir or default_runs_dir(settings)
    try:
        run_path = find_run(run, directory, on_skip=_warn_skipped)
        record = load_run(run_path)
        base_path = (
            find_run(baseline, directory)
            if baseline
            else previous_run(run_path, directory, on_skip=_warn_skipped)
        )
        base = load_run(base_path) if base_path else None
        target = output or run_path.with_suffix(".html")
        write_report(record, target, base)
    except EvalError as exc:
        raise _fail(exc) from None
    print_summary(record, err)
    _note_interrupted(record)
    if base is not None:
        err.print(f"diff against {escape(base.run_id)}", highlight=False)
        _note_interrupted(base)
        _note_other_cases(base, record)
    elif baseline is None:
        err.print(
            "no diff: no earlier run of the same corpora and tags (--baseline picks one)",
            markup=False,
            highlight=False,
        )
    out.print(str(target), markup=False, highlight=False, soft_wrap=True)


@eval_app.command("compare")
def compare_command(
    run_a: Annotated[str, typer.Argument(help="First run (file or run id).", metavar="RUN_A")],
    run_b: Annotated[str, typer.Argument(help="Second run (file or run id).", metavar="RUN_B")],
    runs_dir: RunsDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare two runs: pass rates per corpus side by side, and the cases that differ."""
    from evals.report import compare, print_comparison

    settings = cli_settings()
    directory = runs_dir or default_runs_dir(settings)
    try:
        a = load_run(find_run(run_a, directory))
        b = load_run(find_run(run_b, directory))
    except EvalError as exc:
        raise _fail(exc) from None
    comparison = compare(a, b)
    for record in (a, b):
        _note_interrupted(record)
    _note_other_cases(a, b)
    if as_json:
        out.print_json(json.dumps(_comparison_json(comparison)))
        return
    print_comparison(comparison, out)


def _comparison_json(comparison: Any) -> dict[str, Any]:
    def rate(r: Any) -> Any:
        return None if r is None else r.model_dump()

    return {
        "run_a": comparison.run_a.run_id,
        "run_b": comparison.run_b.run_id,
        "per_corpus": {n: {"a": rate(a), "b": rate(b)} for n, a, b in comparison.corpora},
        "overall": {"a": rate(comparison.overall[0]), "b": rate(comparison.overall[1])},
        "same_cases": comparison.same_cases,
        "cases": [
            {
                "case": ch.key,
                "a": ch.status_before,
                "b": ch.status_after,
                "reply_changed": bool(ch.before and ch.after and ch.before.reply != ch.after.reply),
            }
            for ch in comparison.diff.changes
        ],
    }


@eval_app.command("schema")
def schema_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of a run record (evals/run.schema.json is this output)."""
    text = json.dumps(run_schema(), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        # "[Errno 2] No such file or directory: 'x'" said neither what was being done
        # nor, for a missing folder, which part was missing.
        raise _fail(
            ValueError(f"cannot write {output}: {why_not_written(output, exc)}"), 1
        ) from None
    out.print(f"wrote {output}", markup=False, highlight=False)


if __name__ == "__main__":
    eval_app()
