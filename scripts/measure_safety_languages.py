"""The input check on the `language` cases of the safety corpora, read as written and translated.

Every case tagged ``language`` of safety_harmful and safety_benign goes through the input
check (tools/guardrails/guard.py) on the configured chat model (the default 1.5B unless
settings say otherwise) at moderate and relaxed: once with the translation step off (the
message read as written: the judge alone, with the ``unread`` bias) and once with it on.
Each model call is made once per text (the level changes only the policy). Prints a line
per case and, per mode and level, harmful refused and look-alikes refused per split;
--out DIR keeps every verdict as JSON lines (``before.jsonl``, ``after.jsonl``).

Usage (on the default model, under the machine's model lock):
    python scripts/measure_safety_languages.py [--out DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.corpus import load_corpora
from graph.deps import Deps
from graph.settings import SafetyLevel, get_settings
from tools.guardrails.guard import build_guard

LEVELS: tuple[SafetyLevel, ...] = ("moderate", "relaxed")


def main() -> None:
    """Run both modes and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep every verdict as JSON lines here")
    args = parser.parse_args()
    settings = get_settings()
    deps = Deps(settings)
    guard = build_guard(settings, deps.safety, lambda: deps.model, deps.can_judge)
    judge, translator = guard.judge, guard.translator
    if judge is None or translator is None:
        raise SystemExit("the judge and the translation must be on (safety.judge, .translate)")
    # Model calls depend on the text only, not the level: asked once per text.
    judge.check = functools.lru_cache(maxsize=None)(judge.check)  # type: ignore[method-assign]
    judge.category = functools.lru_cache(maxsize=None)(judge.category)  # type: ignore[method-assign]
    translator.translate = functools.lru_cache(maxsize=None)(translator.translate)  # type: ignore[method-assign]
    cases = [
        (corpus.name, case)
        for corpus in load_corpora(("safety_harmful", "safety_benign"))
        for case in corpus.cases
        if "language" in case.tags
    ]
    for mode in ("before", "after"):
        guard.translator = translator if mode == "after" else None
        rows: list[dict[str, Any]] = []
        for corpus, case in cases:
            for level in LEVELS:
                started = time.perf_counter()
                verdict = guard.check(case.turns[0], level)
                scores = verdict.scores or {}
                rows.append(
                    {
                        "corpus": corpus,
                        "id": case.id,
                        "tags": case.tags,
                        "level": level,
                        "allowed": verdict.allowed,
                        "category": verdict.category,
                        "layer": verdict.layer,
                        "scores": scores,
                        "seconds": round(time.perf_counter() - started, 2),
                    }
                )
                print(
                    mode, case.id, level, verdict.allowed, verdict.category,
                    scores.get("p_harmful"), scores.get("translation"), flush=True,
                )  # fmt: skip
        for level in LEVELS:
            for split in ("dev", "heldout"):
                picked = [r for r in rows if r["level"] == level and split in r["tags"]]
                harmful = [r for r in picked if r["corpus"] == "safety_harmful"]
                benign = [r for r in picked if r["corpus"] == "safety_benign"]
                print(
                    f"{mode} {level} {split}: harmful refused "
                    f"{sum(not r['allowed'] for r in harmful)}/{len(harmful)}, look-alikes "
                    f"refused {sum(not r['allowed'] for r in benign)}/{len(benign)}"
                )
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            with (args.out / f"{mode}.jsonl").open("w", encoding="utf-8") as file:
                for row in rows:
                    file.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
