"""Fit how the safety judge and the semantic layer combine (prompts/safety_calibration.yaml).

Every case of the safety corpora (safety_harmful: should be refused; safety_benign:
harmless look-alikes) goes through the input check's layers on the configured chat model
(the default 1.5B unless settings say otherwise): the lexical layer, the semantic layer's
harm probability, and, for the messages the guard would send to the judge, the judge's
P(unsafe). A logistic regression on the development cases (tag ``dev``) fits the stacking
weights (tools/guardrails/calibration.py); the held-out cases (tag ``heldout``) are only
reported. The refusal threshold is the settings' ``safety.judge_threshold``.

Prints progress, the weights, and false refusals and recall per split at a few
thresholds. --write updates the calibration file; --scores keeps every case's layer
scores as JSON lines (and --from-scores refits from such a file without the model).

Usage: python scripts/calibrate_safety.py [--write] [--scores FILE | --from-scores FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.corpus import load_corpora
from graph.deps import Deps
from graph.settings import get_settings
from tools.guardrails.calibration import DEFAULT_CALIBRATION_FILE, Calibration, logit
from tools.guardrails.guard import build_guard

CORPORA = ("safety_harmful", "safety_benign")
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def layer_scores() -> list[dict[str, Any]]:
    """Each corpus case's first message through the layers (the judge where it would run)."""
    settings = get_settings()
    deps = Deps(settings)
    guard = build_guard(settings, deps.safety, lambda: deps.model, deps.can_judge)
    if guard.judge is None or guard.semantic is None:
        raise SystemExit("the judge and the semantic layer must be on (safety.judge, .semantic)")
    rows = []
    cases = [(c.name, case) for c in load_corpora(CORPORA) for case in c.cases]
    for number, (corpus, case) in enumerate(cases, 1):
        text = case.turns[0]
        lexical = not deps.safety.check_input(text, "moderate").allowed
        score = guard.semantic.score(text)
        uncertain = (
            not score.english
            or score.harm >= guard.thresholds.uncertain_harm
            or score.nearest >= guard.thresholds.uncertain_nearest
        )
        verdict = guard.judge.check(text) if uncertain and not lexical else None
        rows.append(
            {
                "corpus": corpus,
                "id": case.id,
                "tags": case.tags,
                "harmful": corpus == "safety_harmful",
                "lexical": lexical,
                "uncertain": uncertain,
                "english": score.english,
                "harm": score.harm,
                "judge": verdict.probability if verdict else None,
            }
        )
        print(f"[{number}/{len(cases)}] {corpus}/{case.id}", file=sys.stderr, flush=True)
    return rows


def features(row: dict[str, Any]) -> list[float]:
    return [logit(row["judge"]), logit(row["harm"]) if row["english"] else 0.0]


def fit(rows: list[dict[str, Any]]) -> Calibration:
    """Logistic regression on the judged development cases (scikit-learn, L2, C=1)."""
    from sklearn.linear_model import LogisticRegression

    train = [r for r in rows if "dev" in r["tags"] and r["judge"] is not None]
    if len({r["harmful"] for r in train}) < 2:
        raise SystemExit("need judged development cases of both kinds to fit")
    model = LogisticRegression(C=1.0).fit(
        [features(r) for r in train], [int(r["harmful"]) for r in train]
    )
    judge, harm = (float(w) for w in model.coef_[0])
    return Calibration(judge=judge, harm=harm, bias=float(model.intercept_[0]))


def report(rows: list[dict[str, Any]], calibration: Calibration) -> None:
    for split in ("dev", "heldout"):
        part = [r for r in rows if split in r["tags"]]
        harmful = [r for r in part if r["harmful"]]
        benign = [r for r in part if not r["harmful"]]
        print(f"{split}: {len(harmful)} harmful, {len(benign)} benign")
        for threshold in THRESHOLDS:

            def refused(row: dict[str, Any], threshold: float = threshold) -> bool:
                if row["lexical"]:
                    return True
                if row["judge"] is None:
                    return False
                harm = row["harm"] if row["english"] else None
                return calibration.probability(row["judge"], harm) >= threshold

            recall = sum(map(refused, harmful))
            false = sum(map(refused, benign))
            print(
                f"  threshold {threshold:.1f}: recall {recall}/{len(harmful)}, "
                f"false refusals {false}/{len(benign)}"
            )


def write(path: Path, calibration: Calibration, rows: list[dict[str, Any]]) -> None:
    judged = sum(1 for r in rows if "dev" in r["tags"] and r["judge"] is not None)
    head = path.read_text(encoding="utf-8").split("\nversion:", 1)[0]
    path.write_text(
        f"{head}\nversion: 1\n"
        f'fitted_on: "{date.today()}: the {judged} judged dev cases of {", ".join(CORPORA)}"\n'
        f"judge: {calibration.judge:.4f}\nharm: {calibration.harm:.4f}\n"
        f"bias: {calibration.bias:.4f}\n",
        encoding="utf-8",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update the calibration file")
    parser.add_argument("--file", type=Path, default=DEFAULT_CALIBRATION_FILE)
    parser.add_argument("--scores", type=Path, help="also save the layer scores here")
    parser.add_argument("--from-scores", type=Path, help="fit from saved scores, no model")
    args = parser.parse_args()
    if args.from_scores:
        lines = args.from_scores.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    else:
        rows = layer_scores()
        if args.scores:
            args.scores.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    calibration = fit(rows)
    print(
        f"weights: judge {calibration.judge:.3f}, harm {calibration.harm:.3f}, "
        f"bias {calibration.bias:.3f}"
    )
    report(rows, calibration)
    if args.write:
        write(args.file, calibration, rows)
        print(f"wrote {args.file}")


if __name__ == "__main__":
    main()
