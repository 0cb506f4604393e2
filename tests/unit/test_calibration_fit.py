"""scripts/calibrate_safety.py: the stacking fit on stored layer scores (no model)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("calibrate_safety")


def rows(seed: int, n: int = 80) -> list[dict[str, Any]]:
    """Synthetic cases: harmful ones score higher on every layer, with noise and overlap."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        harmful = i % 2 == 0
        split = "heldout" if i % 5 == 0 else "dev"
        lift = 0.25 if harmful else 0.0
        out.append(
            {
                "id": f"c{i}",
                "tags": [split],
                "harmful": harmful,
                "lexical": False,
                "uncertain": i % 11 != 0,
                "english": i % 7 != 0,
                "judge": min(0.99, max(0.01, rng.gauss(0.55 + lift, 0.2))),
                "harm": min(0.99, max(0.01, rng.gauss(0.4 + lift, 0.2))),
                "nearest": rng.gauss(0.45 + lift / 2, 0.1),
                "nearest_benign": rng.gauss(0.5 - lift / 2, 0.1),
            }
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fit_trusts_every_informative_layer_and_picks_a_cut_on_dev(
    script: ModuleType, seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    data = rows(seed)
    calibration, c, cut = script.fit(data)
    assert calibration.judge > 0 and calibration.harm > 0 and calibration.margin > 0
    assert c in script.C_GRID and 0.05 <= cut <= 0.95
    # the cut is folded into the bias: P = 0.5 is the cross-validated cut
    harmful = [r for r in data if r["harmful"] and script.judged(r)]
    benign = [r for r in data if not r["harmful"] and script.judged(r)]

    def p(r: dict[str, Any]) -> float:
        margin = r["nearest"] - r["nearest_benign"] if r["english"] else 0.0
        return float(
            calibration.probability(r["judge"], r["harm"] if r["english"] else None, margin)
        )

    assert sum(map(p, harmful)) / len(harmful) > sum(map(p, benign)) / len(benign)
    assert "cross-validated AUC" in capsys.readouterr().out


def test_held_out_cases_never_change_the_fit(script: ModuleType) -> None:
    data = rows(4)
    changed = [dict(r, harmful=not r["harmful"]) if "heldout" in r["tags"] else r for r in data]
    assert script.fit(data) == script.fit(changed)


def test_uncertain_or_lexical_cases_are_not_what_the_fit_learns_from(script: ModuleType) -> None:
    data = rows(5)
    assert not script.judged(dict(data[1], uncertain=False))
    assert not script.judged(dict(data[1], lexical=True))
    assert not script.judged(dict(data[1], judge=None))
    assert script.judged(dict(data[1], uncertain=True, lexical=False))


def test_stored_scores_refit_from_the_command_line(
    script: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scores = tmp_path / "scores.jsonl"
    scores.write_text("".join(json.dumps(r) + "\n" for r in rows(6)), encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["calibrate_safety.py", "--from-scores", str(scores)])
    script.main()
    out = capsys.readouterr().out
    assert "weights: judge" in out and "heldout:" in out and "threshold 0.5" in out


def test_the_fit_learns_a_bias_of_its_own_for_messages_it_cannot_read(
    script: ModuleType,
) -> None:
    # Foreign requests are harmful as often as English ones but the judge is less sure
    # of them (a small model reads other languages worse): the same P(unsafe) means
    # more harm in another language, which only a bias of their own can express.
    data = rows(7, n=200)
    for r in data:
        if not r["english"] and r["harmful"]:
            r["judge"] = max(0.01, r["judge"] - 0.25)
    calibration, _, _ = script.fit(data)
    assert calibration.unread > 0
    assert script.features(dict(data[0], english=False))[1:] == [0.0, 0.0, 1.0]
    assert script.features(dict(data[1], english=True))[3] == 0.0


def test_rescore_hands_the_stored_verdicts_to_the_scoring(
    script: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stored = [
        dict(r, corpus="safety_harmful" if r["harmful"] else "safety_benign") for r in rows(8)
    ]
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in stored), encoding="utf-8")
    seen: dict[str, Any] = {}

    def fake_scores(*args: Any) -> list[dict[str, Any]]:
        seen["stored"] = args[-1]
        return stored

    monkeypatch.setattr(script, "layer_scores", fake_scores)
    monkeypatch.setattr(sys, "argv", ["calibrate_safety.py", "--rescore", str(path)])
    script.main()
    by_case = seen["stored"]
    assert len(by_case) == len(stored)
    # rows written before readings were named are the message's own reading
    assert by_case[("safety_benign", "c1", "message")]["judge"] == stored[1]["judge"]
    assert "weights: judge" in capsys.readouterr().out


class _Translator:
    def __init__(self, text: str | None) -> None:
        self.text = text
        self.asked: list[str] = []

    def translate(self, text: str) -> Any:
        from tools.guardrails.translate import Translation

        self.asked.append(text)
        return None if self.text is None else Translation(self.text, 0.1)


@pytest.mark.parametrize(
    ("message", "translation", "expected"),
    [
        # English as written: one reading, nothing translated
        ("How do I boil an egg?", "unused", [("message", "How do I boil an egg?")]),
        # a disguise is undone before anything reads it, as the guard does
        ("ⓗⓞⓦ ⓓⓞ ⓘ ⓑⓞⓘⓛ ⓐⓝ ⓔⓖⓖ", "unused", [("message", "how do i boil an egg")]),
        # another language: the message and its translation, each judged
        (
            "Comment faire cuire un œuf dur sans qu'il éclate ?",
            "How do I hard-boil an egg without it cracking?",
            [
                ("message", "Comment faire cuire un œuf dur sans qu'il éclate ?"),
                ("translation", "How do I hard-boil an egg without it cracking?"),
            ],
        ),
        # no translation to trust: the message alone
        (
            "Comment faire cuire un œuf dur sans qu'il éclate ?",
            None,
            [("message", "Comment faire cuire un œuf dur sans qu'il éclate ?")],
        ),
    ],
)
def test_cases_are_scored_on_the_readings_the_guard_judges(
    script: ModuleType, message: str, translation: str | None, expected: list[tuple[str, str]]
) -> None:
    translator = _Translator(translation)
    guard = type("Guard", (), {"translator": translator})()
    assert script.readings(guard, message) == expected
    assert translator.asked == ([message] if len(expected) == 2 or translation is None else [])


def test_a_case_counts_once_whichever_of_its_readings_is_refused(
    script: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools.guardrails.calibration import Calibration

    def row(case: str, reading: str, judge: float, harmful: bool) -> dict[str, Any]:
        return {
            "corpus": "safety_harmful" if harmful else "safety_benign",
            "id": case,
            "tags": ["dev"],
            "reading": reading,
            "harmful": harmful,
            "lexical": False,
            "uncertain": True,
            "english": reading == "translation",
            "judge": judge,
            "harm": 0.5,
            "nearest": 0.5,
            "nearest_benign": 0.5,
        }

    data = [
        row("h1", "message", 0.99, True),
        row("h1", "translation", 0.99, True),
        row("h2", "message", 0.01, True),
        row("h2", "translation", 0.99, True),
        row("b1", "message", 0.99, False),
        row("b1", "translation", 0.01, False),
        row("b2", "message", 0.01, False),
    ]
    script.report(data, Calibration(judge=1.0, harm=0.0, bias=0.0))
    out = capsys.readouterr().out
    assert "dev: 2 harmful, 2 benign" in out
    assert "threshold 0.5: recall 2/2, false refusals 1/2" in out
