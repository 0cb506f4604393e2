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

To compare judge prompts before fitting: --judge-prompt/--judge-examples score with other
files, --all judges every case (not only those the guard finds uncertain), --split dev
scores one split only; the AUC of the judge's P(unsafe) is printed per split.

After a change of the exemplars or new cases: --rescore FILE scores the semantic layer
again and reuses FILE's judge verdicts, so the model judges only cases it had not.

Usage: python scripts/calibrate_safety.py [--write] [--scores FILE | --from-scores FILE]
       [--rescore FILE]
       [--judge-prompt FILE] [--judge-examples FILE] [--all] [--split dev|heldout]
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
from tools.guardrails.encodings import undisguised_text
from tools.guardrails.guard import InputGuard, build_guard
from tools.guardrails.judge import DEFAULT_JUDGE_EXAMPLES, DEFAULT_JUDGE_PROMPT, Judge
from tools.guardrails.semantic import looks_english

CORPORA = ("safety_harmful", "safety_benign")
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def layer_scores(
    prompt: Path | None = None,
    examples: Path | None = None,
    judge_all: bool = False,
    split: str | None = None,
    stored: dict[tuple[str, str, str], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Each corpus case's first message through the layers (the judge where it would run).

    Args:
        prompt: Another judge policy prompt to score with (None: the configured one).
        examples: Another judge examples file (None: the configured one).
        judge_all: Judge every case the lexical layer lets through, not only uncertain ones.
        split: Score only the cases with this tag (``dev`` or ``heldout``).
        stored: Earlier rows by (corpus, case id): their judge's P(unsafe) is reused
            (the judge prompt and the case text unchanged), so after a change of the
            exemplars only the cases newly sent to the judge need the model.
    """
    settings = get_settings()
    deps = Deps(settings)
    guard = build_guard(settings, deps.safety, lambda: deps.model, deps.can_judge)
    if guard.judge is None or guard.semantic is None:
        raise SystemExit("the judge and the semantic layer must be on (safety.judge, .semantic)")
    if prompt is not None or examples is not None:
        guard.judge = Judge(
            lambda: deps.model,
            guard.policy.taxonomy,
            prompt or DEFAULT_JUDGE_PROMPT,
            examples or DEFAULT_JUDGE_EXAMPLES,
        )
    rows = []
    cases = [
        (c.name, case)
        for c in load_corpora(CORPORA)
        for case in c.cases
        if split is None or split in case.tags
    ]
    for number, (corpus, case) in enumerate(cases, 1):
        for reading, text in readings(guard, case.turns[0]):
            lexical = not deps.safety.check_input(text, "moderate").allowed
            english = reading == "translation" or looks_english(text)
            score = guard.semantic.score(text, english=english)
            uncertain = (
                not score.english
                or score.harm >= guard.thresholds.uncertain_harm
                or score.nearest >= guard.thresholds.uncertain_nearest
            )
            judged = (uncertain or judge_all) and not lexical
            earlier = (stored or {}).get((corpus, case.id, reading), {})
            same = earlier.get("read", case.turns[0]) == text  # old rows read the message
            if judged and earlier.get("judge") is not None and same:
                p_judge: float | None = earlier["judge"]
            else:
                verdict = guard.judge.check(text) if judged else None
                p_judge = verdict.probability if verdict else None
            rows.append(
                {
                    "corpus": corpus,
                    "id": case.id,
                    "tags": case.tags,
                    "reading": reading,
                    "read": text,
                    "harmful": corpus == "safety_harmful",
                    "lexical": lexical,
                    "uncertain": uncertain,
                    "english": score.english,
                    "harm": score.harm,
                    "nearest": score.nearest,
                    "nearest_benign": score.nearest_benign,
                    "judge": p_judge,
                }
            )
        print(f"[{number}/{len(cases)}] {corpus}/{case.id}", file=sys.stderr, flush=True)
    return rows


def readings(guard: InputGuard, message: str) -> list[tuple[str, str]]:
    """The texts the input check reads for ``message``, named: as the guard reads them.

    ``message``: the message with any disguise undone (circled, spaced or look-alike
    letters: :func:`undisguised_text`), as every layer but the lexical one reads it;
    ``translation``: its English translation when it is not English and the guard has a
    translator (the guard refuses when either reading is refused).
    """
    plain = undisguised_text(message) or message
    found = [("message", plain)]
    if guard.translator is not None and not looks_english(plain):
        translation = guard.translator.translate(plain)
        if translation is not None:
            found.append(("translation", translation.text))
    return found


def features(row: dict[str, Any]) -> list[float]:
    """logit(P_judge), logit(P_harm), the kNN margin (0 for a message not in English) and
    1 for a message not in English (its own bias: ``unread``)."""
    english = row["english"]
    margin = row["nearest"] - row["nearest_benign"] if english else 0.0
    return [
        logit(row["judge"]),
        logit(row["harm"]) if english else 0.0,
        margin,
        0.0 if english else 1.0,
    ]


def judged(row: dict[str, Any]) -> bool:
    """Whether the guard would judge this case: uncertain, not already lexically refused."""
    return bool(row["judge"] is not None and row["uncertain"] and not row["lexical"])


def fit(rows: list[dict[str, Any]]) -> tuple[Calibration, float, float]:
    """Logistic regression on the judged development cases, C and cut by cross-validation.

    The regularisation C is the one with the best 5-fold AUC on the development cases;
    the cut is the probability that maximises recall minus false-refusal rate (Youden's J)
    on the out-of-fold predictions, folded into the bias so that P = 0.5 is the cut.

    Returns:
        The weights, the chosen C and the cut before folding.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score, roc_curve
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    train = [r for r in rows if "dev" in r["tags"] and judged(r)]
    if len({r["harmful"] for r in train}) < 2:
        raise SystemExit("need judged development cases of both kinds to fit")
    x = np.array([features(r) for r in train])
    y = np.array([int(r["harmful"]) for r in train])
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    best: tuple[float, float, np.ndarray] | None = None
    for c in C_GRID:
        oof = cross_val_predict(
            LogisticRegression(C=c, max_iter=1000), x, y, cv=folds, method="predict_proba"
        )[:, 1]
        score = float(roc_auc_score(y, oof))
        print(f"  C={c:g}: cross-validated AUC {score:.3f}")
        if best is None or score > best[1] + 1e-3:
            best = (c, score, oof)
    assert best is not None
    c, _, oof = best
    fpr, tpr, cuts = roc_curve(y, oof)
    cut = float(min(max(cuts[int(np.argmax(tpr - fpr))], 0.05), 0.95))
    model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
    judge, harm, margin, unread = (float(w) for w in model.coef_[0])
    bias = float(model.intercept_[0]) - logit(cut)
    return Calibration(judge=judge, harm=harm, bias=bias, margin=margin, unread=unread), c, cut


def auc(rows: list[dict[str, Any]]) -> None:
    """How well the judge's P(unsafe) alone ranks harmful above benign, per split."""
    from sklearn.metrics import roc_auc_score

    for split in ("dev", "heldout"):
        part = [r for r in rows if split in r["tags"] and judged(r)]
        if len({r["harmful"] for r in part}) == 2:
            score = roc_auc_score([r["harmful"] for r in part], [r["judge"] for r in part])
            print(f"{split}: judge AUC {score:.3f} on {len(part)} judged cases")


def report(rows: list[dict[str, Any]], calibration: Calibration) -> None:
    """Recall and false refusals per split at a few thresholds, counted per case: a case
    is refused when any of its readings is (as the guard refuses)."""
    for split in ("dev", "heldout"):
        cases: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            if split in row["tags"]:
                cases.setdefault((row.get("corpus", ""), row["id"]), []).append(row)
        harmful = [r for r in cases.values() if r[0]["harmful"]]
        benign = [r for r in cases.values() if not r[0]["harmful"]]
        print(f"{split}: {len(harmful)} harmful, {len(benign)} benign")
        for threshold in THRESHOLDS:

            def refused(row: dict[str, Any], threshold: float = threshold) -> bool:
                if row["lexical"]:
                    return True
                if not judged(row):
                    return False  # the guard judges only uncertain messages
                if not row["english"]:
                    return calibration.probability(row["judge"], None) >= threshold
                margin = row["nearest"] - row["nearest_benign"]
                return calibration.probability(row["judge"], row["harm"], margin) >= threshold

            recall = sum(any(map(refused, case)) for case in harmful)
            false = sum(any(map(refused, case)) for case in benign)
            print(
                f"  threshold {threshold:.1f}: recall {recall}/{len(harmful)}, "
                f"false refusals {false}/{len(benign)}"
            )


def write(
    path: Path, calibration: Calibration, rows: list[dict[str, Any]], c: float, cut: float
) -> None:
    count = sum(1 for r in rows if "dev" in r["tags"] and judged(r))
    head = path.read_text(encoding="utf-8").split("\nversion:", 1)[0]
    path.write_text(
        f"{head}\nversion: 2\n"
        f'fitted_on: "{date.today()}: the {count} judged dev readings of {", ".join(CORPORA)}, '
        f'C={c:g}, cross-validated cut {cut:.2f} folded into the bias"\n'
        f"judge: {calibration.judge:.4f}\nharm: {calibration.harm:.4f}\n"
        f"margin: {calibration.margin:.4f}\nbias: {calibration.bias:.4f}\n"
        f"unread: {calibration.unread:.4f}\n",
        encoding="utf-8",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update the calibration file")
    parser.add_argument("--file", type=Path, default=DEFAULT_CALIBRATION_FILE)
    parser.add_argument("--scores", type=Path, help="also save the layer scores here")
    parser.add_argument("--from-scores", type=Path, help="fit from saved scores, no model")
    parser.add_argument(
        "--rescore",
        type=Path,
        help="score again (new exemplars, new cases) reusing this file's judge verdicts",
    )
    parser.add_argument("--judge-prompt", type=Path, help="score with this policy prompt")
    parser.add_argument("--judge-examples", type=Path, help="score with these examples")
    parser.add_argument("--all", action="store_true", help="judge every case, not only uncertain")
    parser.add_argument("--split", choices=("dev", "heldout"), help="score one split only")
    args = parser.parse_args()
    if args.from_scores:
        lines = args.from_scores.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    else:
        stored = None
        if args.rescore:
            lines = args.rescore.read_text(encoding="utf-8").splitlines()
            earlier = [json.loads(line) for line in lines if line.strip()]
            stored = {(r["corpus"], r["id"], r.get("reading", "message")): r for r in earlier}
        rows = layer_scores(args.judge_prompt, args.judge_examples, args.all, args.split, stored)
        if args.scores:
            args.scores.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    auc(rows)
    calibration, c, cut = fit(rows)
    print(
        f"weights: judge {calibration.judge:.3f}, harm {calibration.harm:.3f}, "
        f"margin {calibration.margin:.3f}, bias {calibration.bias:.3f}, "
        f"unread {calibration.unread:.3f} "
        f"(C={c:g}, cut {cut:.2f} folded into the bias)"
    )
    report(rows, calibration)
    if args.write:
        write(args.file, calibration, rows, c, cut)
        print(f"wrote {args.file}")


if __name__ == "__main__":
    main()
