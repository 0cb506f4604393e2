"""``assistant eval run``: what the corpora files can tell is refused before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import evals.runner
from apps.cli.evals import eval_app
from evals.corpus import EvalError

TWO = """\
corpus: {name}
defaults:
  tags: [{name}]
cases:
  - id: a
    tags: [alpha, shared]
    turns: [hello]
    expect:
      - blocked: false
  - id: b
    tags: [beta]
    turns: [hi]
    expect:
      - blocked: false
"""


@pytest.fixture
def corpora(tmp_path: Path) -> Path:
    folder = tmp_path / "corpora"
    folder.mkdir()
    for name in ("one", "two"):
        (folder / f"{name}.yaml").write_text(TWO.format(name=name), encoding="utf-8")
    (folder / "two.yaml").write_text(
        TWO.format(name="two").replace("beta", "gamma"), encoding="utf-8"
    )
    return folder


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake backend, and a run that fails the test if anything starts to run."""
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(evals.runner, "run_evals", started)
    monkeypatch.setattr(evals.runner, "run_settings", started)


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("args", "unknown", "known"),
    [
        (["--tag", "nope"], "unknown tag 'nope'", "alpha, beta, gamma, one, shared, two"),
        # A typo beside a good tag would narrow the run without a word: refused too.
        (["-t", "alpha", "-t", "alpah"], "unknown tag 'alpah'", "alpha, beta"),
        (["one", "-t", "x", "-t", "y", "-t", "x"], "unknown tags 'x', 'y'", "alpha, beta, one"),
        # A tag of another corpus than the one named is not there.
        (["one", "--tag", "gamma"], "no case of one has it", "(tags there: alpha, beta, one"),
        (["--tag", ""], "unknown tag ''", "alpha"),
        (["--tag", "Alpha"], "unknown tag 'Alpha'", "alpha"),  # tags match exactly
    ],
)
def test_an_unknown_tag_is_refused_before_the_run_with_the_known_ones(
    corpora: Path, tmp_path: Path, args: list[str], unknown: str, known: str
) -> None:
    runs = tmp_path / "runs"
    done = CliRunner().invoke(
        eval_app, ["run", *args, "--evals-dir", str(corpora), "--runs-dir", str(runs)]
    )
    assert done.exit_code == 2, done.output
    assert unknown in done.output and known in done.output
    assert "Traceback" not in done.output and not isinstance(done.exception, AssertionError)
    assert not runs.exists()  # not even the runs directory was made


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown corpus 'nope' (in {dir}: one, two)"),
        (["one", "nope", "--tag", "alpha"], "unknown corpus 'nope'"),
        (["--tag", "nope", "nope"], "unknown corpus 'nope'"),  # the corpus first: tags are its
    ],
)
def test_an_unknown_corpus_is_refused_before_the_run_with_the_known_ones(
    corpora: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    runs = tmp_path / "runs"
    done = CliRunner().invoke(
        eval_app, ["run", *args, "--evals-dir", str(corpora), "--runs-dir", str(runs)]
    )
    assert done.exit_code == 2, done.output
    assert message.format(dir=corpora) in " ".join(done.output.split())
    assert not runs.exists()


def test_known_tags_of_any_named_corpus_reach_the_run(
    corpora: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_MODEL__BACKEND", "fake")
    seen: list[list[str]] = []

    def run(corpora: Any, settings: Any, *, tags: list[str], **kwargs: Any) -> None:
        seen.append(list(tags))
        raise EvalError("stopped by the test")

    monkeypatch.setattr(evals.runner, "run_evals", run)
    done = CliRunner().invoke(
        eval_app,
        [
            "run",
            *("-t", "beta", "-t", "gamma"),  # one in each corpus: any of them is a case
            *("--evals-dir", str(corpora), "--runs-dir", str(tmp_path / "runs")),
        ],
    )
    assert "stopped by the test" in done.output
    assert seen == [["beta", "gamma"]]


@pytest.mark.parametrize(
    ("where", "why"),
    [("missing/schema.json", "no such folder: {tmp}/missing"), ("folder", "it is a folder")],
)
def test_a_schema_that_cannot_be_written_says_why_in_words(
    tmp_path: Path, where: str, why: str
) -> None:
    (tmp_path / "folder").mkdir()
    target = tmp_path / where
    done = CliRunner().invoke(eval_app, ["schema", "-o", str(target)])
    assert done.exit_code == 1
    text = " ".join(done.output.split())
    assert f"cannot write {target}: {why.format(tmp=tmp_path)}" in text, text
    assert "Errno" not in text


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(("where", "why"), [("none", "no such folder"), ("file", "a file, not")])
def test_an_evals_dir_that_is_not_a_folder_is_named_so(
    tmp_path: Path, where: str, why: str
) -> None:
    (tmp_path / "file").write_text("x")
    done = CliRunner().invoke(eval_app, ["run", "--evals-dir", str(tmp_path / where)])
    assert done.exit_code == 2
    assert f"--evals-dir {tmp_path / where}: {why}" in " ".join(done.output.split())
