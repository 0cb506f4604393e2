"""``ingest`` of a folder with nothing it can read says so, and which types it reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import apps.cli.main as cli
import tools.documents.ingest as ingest_module
from tools.documents.ingest import FileProblem, FileResult, IngestReport, collect_files
from tools.documents.loaders import SUPPORTED


def _report(**fields: Any) -> IngestReport:
    return IngestReport(collection="default", **fields)


@pytest.mark.parametrize(
    ("report", "says"),
    [
        (_report(), "no files found in docs"),
        (
            _report(skipped=[FileProblem("docs/a.png", "unsupported type (.png)")]),
            "every file found was skipped",
        ),
        (
            _report(skipped=[FileProblem("docs/README", "no extension")]),
            "every file found was skipped",
        ),
        (_report(added=[FileResult("docs/a.md", 2)]), None),
        (_report(unchanged=["docs/a.md"]), None),  # found, nothing new: no note
        (_report(replaced=[FileResult("docs/a.md", 2, 1)]), None),
        (_report(failed=[FileProblem("docs/a.pdf", "broken PDF")]), None),
        (_report(pruned=[FileResult("docs/gone.md", 0, 3)]), None),
        (
            _report(
                skipped=[FileProblem("docs/a.png", "unsupported type (.png)")],
                added=[FileResult("docs/a.md", 2)],
            ),
            None,
        ),
    ],
)
def test_the_note_says_why_nothing_was_stored(report: IngestReport, says: str | None) -> None:
    note = cli._nothing_found(report, ["docs"])
    if says is None:
        assert note is None
    else:
        assert note is not None and says in note
        assert all(suffix in note for suffix in SUPPORTED)  # which types are read


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ([], "no files found in"),
        ([".hidden.md", ".git/config.md"], "no files found in"),
        (["photo.png", "Makefile"], "every file found was skipped"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_ingest_of_a_folder_with_nothing_to_read_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: list[str],
    says: str,
    as_json: bool,
) -> None:
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("some words")

    def fake_ingest(store: object, paths: list[str], **_: Any) -> IngestReport:
        plan = collect_files(paths)  # the real walk: what is found and skipped
        assert plan.files == []
        return IngestReport(collection="default", skipped=plan.skipped, failed=plan.failed)

    monkeypatch.setattr(cli, "_document_store", lambda settings, collection: object())
    monkeypatch.setattr(ingest_module, "ingest", fake_ingest)
    done = CliRunner().invoke(cli.app, ["ingest", str(folder), *(["--json"] if as_json else [])])
    assert done.exit_code == 0, done.output
    flat = " ".join(done.stderr.split())
    assert says in flat and str(folder) in flat, flat
    assert ".md" in flat and ".pdf" in flat
    if as_json:  # the note stays off stdout: the JSON still parses
        assert json.loads(done.stdout)["files_seen"] == len(
            [f for f in files if not f.startswith(".")]
        )
