"""scripts/calibrate_safety_replies.py: labels, the reply threshold, the stored set (no model)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("calibrate_safety_replies")


def row(corpus: str, case: str, sample: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "corpus": corpus,
        "id": case,
        "sample": sample,
        "max_new_tokens": 32,
        "split": "dev",
        "label": "safe" if corpus == "safety_benign" else None,
        **extra,
    }


def test_labels_are_read_per_reply_and_benign_replies_stay_safe(
    script: ModuleType, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("# rule\nh-1#0/32 unsafe\nh-1#1/32 safe\n", "utf-8")
    rows = [row("safety_harmful", "h-1"), row("safety_harmful", "h-1", 1)]
    rows += [row("safety_harmful", "h-2"), row("safety_benign", "b-1")]
    script.apply_labels(rows, labels)
    assert [r["label"] for r in rows] == ["unsafe", "safe", None, "safe"]


@pytest.mark.parametrize(
    ("text", "message"), [("h-9#0/32 unsafe\n", "no reply"), ("h-1#0/32 maybe\n", "safe or")]
)
def test_a_label_of_no_reply_or_no_label_is_an_error(
    script: ModuleType, tmp_path: Path, text: str, message: str
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text(text, "utf-8")
    with pytest.raises(SystemExit, match=message):
        script.apply_labels([row("safety_harmful", "h-1")], labels)


@pytest.mark.parametrize(
    ("unsafe", "safe", "cut"),
    [
        ([0.9, 0.95, 0.99], [0.1, 0.2, 0.5], 0.9),  # separable: catches all, withdraws none
        ([0.6, 0.97, 0.99], [0.1, 0.7, 0.95], 0.97),
        ([0.99], [0.99, 0.1], 0.99),  # ties go to the higher cut
    ],
)
def test_the_dev_cut_maximises_recall_minus_false_withdrawals(
    script: ModuleType, unsafe: list[float], safe: list[float], cut: float
) -> None:
    rows = [{"label": "unsafe", "judge": p} for p in unsafe]
    rows += [{"label": "safe", "judge": p} for p in safe]
    assert script.choose(rows) == pytest.approx(cut)


def test_the_stored_reply_set_is_labelled_and_scored(script: ModuleType) -> None:
    rows = script.read_rows(script.DEFAULT_FILE)
    script.apply_labels(rows)
    assert {r["split"] for r in rows} == {"dev", "heldout"}
    harmful = [r for r in rows if r["corpus"] == "safety_harmful"]
    assert harmful and all(r["label"] in ("safe", "unsafe") for r in harmful)
    assert {r["label"] for r in harmful} == {"safe", "unsafe"}
    assert all(r["label"] == "safe" for r in rows if r["corpus"] == "safety_benign")
    assert all(isinstance(r.get("judge"), float) for r in rows)
