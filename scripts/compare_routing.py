"""Compare routing mechanisms offline: the shipped centroid router against alternatives.

Embeds the concept examples, the no_concept requests and the routing corpus once, then
scores each mechanism on the same numbers: the examples decided right with each left out
(leave-one-out for the centroid and kNN scores, 10-fold cross-validation for a trained
classifier), and the corpus split into cases not tagged ``held_out`` and ``held_out``,
with how many of its ``known_failure`` cases a mechanism fixes and how many passing ones
it breaks. Nothing is written; the shipped router is untouched.

Mechanisms:
  centroid  the shipped one (tools.routing): cosine to each concept's centroid, none = mean
            of the 5 nearest no_concept requests, rules and numbers from calibrate().
  knn-K     the same rules, a concept's score the mean of its K nearest examples.
  lr        a class-balanced LogisticRegression over [embedding, alias features]
            ("none" a class), routed when the best class is a concept with probability
            >= t; C, alias weight and t chosen by cross-validation on the examples only.
  mix-A     alias rules as shipped; without an alias, meaning = A * centroid cosine +
            (1 - A) * the classifier's probability (none likewise), calibrated like the
            shipped meaning rule on cross-validated scores; three fold seeds.

Usage: python scripts/compare_routing.py
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tools.routing as routing
from tools.models.embeddings import get_embeddings

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore")


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: str | None
    held_out: bool
    known: bool
    semantic: bool
    fuzzy: bool


def load_cases() -> list[Case]:
    data = yaml.safe_load((ROOT / "evals/corpora/routing.yaml").read_text(encoding="utf-8"))
    cases = []
    for c in data["cases"]:
        semantic = (c.get("settings") or {}).get("prompts", {}).get("semantic", True)
        expected = next(e["concept"] for e in c["expect"] if "concept" in e)
        cases.append(
            Case(
                c["id"],
                c["turns"][0],
                expected,
                "held_out" in c.get("tags", []),
                bool(c.get("known_failure")),
                semantic,
                (c.get("context") or {}).get("fuzzy_aliases", False),
            )
        )
    return cases


class Bench:
    """Everything embedded once, and the shipped router's alias evidence."""

    def __init__(self) -> None:
        self.file = routing.load_concept_file()
        assert self.file.params is not None
        self.params = self.file.params
        self.router = routing.ConceptRouter(self.file, None)
        self.names = list(self.router.names)
        self.k = len(self.names)
        self.n_concept = len(self.router.texts)
        self.texts = [*self.router.texts, *self.file.no_concept]
        self.labels: list[str | None] = [self.names[o] for o in self.router.owner]
        self.labels += [None] * len(self.file.no_concept)
        self.y = np.array([self.names.index(x) if x else self.k for x in self.labels])
        self.owner = np.array(self.router.owner)
        self.cases = load_cases()
        model = get_embeddings()
        self.x = routing.embed_examples(model, self.texts)
        self.q = routing.embed_examples(model, [c.text for c in self.cases])
        self.ex_alias = [self.router.deciding_alias(t) for t in self.texts]
        self.q_alias = [self.router.deciding_alias(c.text, fuzzy=c.fuzzy) for c in self.cases]
        # none: mean of the 5 nearest no_concept requests (an ordinary request without itself)
        sims = self.x @ self.x[self.n_concept :].T
        for i in range(self.n_concept, len(self.texts)):
            sims[i, i - self.n_concept] = -9.0
        self.none_ex = np.sort(sims, axis=1)[:, ::-1][:, : routing.NONE_NEIGHBOURS].mean(1)
        qs = self.q @ self.x[self.n_concept :].T
        self.none_q = np.sort(qs, axis=1)[:, ::-1][:, : routing.NONE_NEIGHBOURS].mean(1)

    def centroid(self) -> tuple[Any, Any]:
        """Cosines to the centroids: (examples, each left out of its own), (corpus)."""
        sums = np.stack([self.x[: self.n_concept][self.owner == j].sum(0) for j in range(self.k)])
        counts = np.bincount(self.owner, minlength=self.k).astype(np.float32)
        ex = np.zeros((len(self.texts), self.k))
        for i, vector in enumerate(self.x):
            own, count = sums, counts
            if i < self.n_concept:
                own, count = sums.copy(), counts.copy()
                own[self.owner[i]] -= vector
                count[self.owner[i]] -= 1
            ex[i] = routing._normalised(own / count[:, None]) @ vector
        centroids = routing._normalised(sums / counts[:, None])
        return ex, self.q @ centroids.T

    def knn(self, k: int) -> tuple[Any, Any]:
        def score(sims: Any) -> Any:
            out = np.zeros((len(sims), self.k))
            for j in range(self.k):
                out[:, j] = np.sort(sims[:, self.owner == j], axis=1)[:, ::-1][:, :k].mean(1)
            return out

        sims = self.x @ self.x[: self.n_concept].T
        sims[np.arange(self.n_concept), np.arange(self.n_concept)] = -9.0
        return score(sims), score(self.q @ self.x[: self.n_concept].T)

    def probabilities(self, features: Any, q_features: Any, c: float, seed: int) -> Any:
        """Class probabilities: cross-validated for the examples, fitted on all for the corpus."""

        def model() -> LogisticRegression:
            return LogisticRegression(C=c, class_weight="balanced", max_iter=2000)

        ex = np.zeros((len(self.y), self.k + 1))
        folds = StratifiedKFold(10, shuffle=True, random_state=seed)
        for train, test in folds.split(features, self.y):
            ex[test] = model().fit(features[train], self.y[train]).predict_proba(features[test])
        return ex, model().fit(features, self.y).predict_proba(q_features)

    def alias_features(self, found: list[tuple[routing.AliasMatch | None, bool]]) -> Any:
        out = np.zeros((len(found), 2 * self.k), dtype=np.float32)
        for i, (alias, leads) in enumerate(found):
            if alias is not None and alias.concept in self.names:
                out[i, self.names.index(alias.concept) + (0 if leads else self.k)] = 1.0
        return out

    def evidence(self, i: int, scores: Any, none: Any, on_corpus: bool) -> routing.Evidence:
        alias, leads = (self.q_alias if on_corpus else self.ex_alias)[i]
        meaning = dict(zip(self.names, (float(v) for v in scores[i]), strict=True))
        return routing.Evidence(meaning, alias, leads, float(none[i]))

    def calibrate(self, scores: Any, none: Any, wide: bool = False) -> routing.Calibration:
        """The shipped calibration, on the given (left-out) scores instead of centroids."""

        def cases(_: object) -> list[tuple[str, str | None, routing.Evidence]]:
            return [
                (t, self.labels[i], self.evidence(i, scores, none, False))
                for i, t in enumerate(self.texts)
            ]

        with grids(wide), mock.patch.object(routing, "leave_one_out", cases):
            return routing.calibrate(self.router)

    def corpus(self, decide: Callable[[int], str | None]) -> list[bool]:
        right = []
        for i, case in enumerate(self.cases):
            if case.semantic:
                got = decide(i)
            else:  # the case pins aliases alone
                match = self.router.matcher.match(case.text, fuzzy=case.fuzzy)
                got = match.concept if match else None
            right.append(got == case.expected)
        return right


@contextmanager
def grids(wide: bool) -> Iterator[None]:
    """Wider grids for scores that are not plain cosines (blends with probabilities)."""
    if not wide:
        yield
        return
    thresholds = tuple(round(-0.1 + 0.01 * i, 2) for i in range(111))
    margins = (routing.NO_MARGIN, *(round(-0.5 + 0.01 * i, 2) for i in range(101)))
    with (
        mock.patch.object(routing, "THRESHOLD_GRID", thresholds),
        mock.patch.object(routing, "MARGIN_GRID", margins),
    ):
        yield


def report(bench: Bench, label: str, examples_right: int, right: list[bool]) -> None:
    cases = bench.cases
    ok = np.array(right)
    held = np.array([c.held_out for c in cases])
    known = np.array([c.known for c in cases])
    print(
        f"{label:24s} examples {examples_right}/{len(bench.texts)}  "
        f"corpus {ok.sum()}/{len(ok)}  not held out {ok[~held].sum()}/{(~held).sum()}  "
        f"held_out {ok[held].sum()}/{held.sum()}  known fixed {(ok & known).sum()}/"
        f"{known.sum()}  newly failing {(~ok & ~known).sum()}"
    )
    broken = [c.id for c, r in zip(cases, right, strict=True) if not r and not c.known]
    if broken:
        print(f"{'':24s} newly failing: {', '.join(broken)}")


def rules(bench: Bench, label: str, ex: Any, q: Any, none_ex: Any, none_q: Any) -> Any:
    found = bench.calibrate(ex, none_ex)

    def decide(i: int) -> str | None:
        return routing.decide(bench.evidence(i, q, none_q, True), found.params).concept

    report(bench, label, found.correct, bench.corpus(decide))
    return found.params


def main() -> None:
    bench = Bench()
    cent_ex, cent_q = bench.centroid()
    shipped = rules(bench, "centroid (shipped)", cent_ex, cent_q, bench.none_ex, bench.none_q)
    for k in (3, 8):
        ex, q = bench.knn(k)
        rules(bench, f"knn-{k}", ex, q, bench.none_ex, bench.none_q)

    # lr: one model, aliases as features; C, alias weight and t by 10-fold CV on examples
    ex_alias = bench.alias_features(bench.ex_alias)
    q_alias = bench.alias_features(bench.q_alias)
    best: tuple[float, float, float, float] = (-1.0, 0.0, 0.0, 0.0)
    for c in (4.0, 16.0, 64.0):
        for weight in (0.0, 0.5, 1.0):
            feats = np.hstack([bench.x, weight * ex_alias])
            p_ex, _ = bench.probabilities(feats, feats[:1], c, 0)
            for t in (0.3, 0.4, 0.5):
                accuracy = float((lr_decide(p_ex, t, bench.k) == bench.y).mean())
                best = max(best, (accuracy, c, weight, t))
    accuracy, c, weight, t = best
    p_ex, p_q = bench.probabilities(
        np.hstack([bench.x, weight * ex_alias]), np.hstack([bench.q, weight * q_alias]), c, 0
    )
    chosen = lr_decide(p_q, t, bench.k)
    names = [*bench.names, None]
    report(
        bench,
        f"lr C={c:g} w={weight:g} t={t:g}",
        round(accuracy * len(bench.texts)),
        bench.corpus(lambda i: names[chosen[i]]),
    )

    # mix: alias rules as shipped, a blend of cosine and probability without an alias
    for a in (0.5, 0.75):
        for c in (4.0, 16.0):
            for seed in (0, 1, 2):
                p_ex, p_q = bench.probabilities(bench.x, bench.q, c, seed)
                b_ex = a * cent_ex + (1 - a) * p_ex[:, : bench.k]
                b_q = a * cent_q + (1 - a) * p_q[:, : bench.k]
                n_ex = a * bench.none_ex + (1 - a) * p_ex[:, bench.k]
                n_q = a * bench.none_q + (1 - a) * p_q[:, bench.k]
                meaning = bench.calibrate(b_ex, n_ex, wide=True).params
                no_alias = (b_ex, n_ex, b_q, n_q, meaning)
                mixed = make_mixed(bench, (cent_ex, cent_q), shipped, no_alias)
                examples_right = sum(
                    mixed(i, False) == bench.labels[i] for i in range(len(bench.texts))
                )
                report(
                    bench,
                    f"mix a={a:g} C={c:g} seed={seed}",
                    examples_right,
                    bench.corpus(lambda i, mixed=mixed: mixed(i, True)),
                )


def make_mixed(
    bench: Bench,
    cosines: tuple[Any, Any],
    shipped: routing.RoutingParams,
    no_alias: tuple[Any, Any, Any, Any, routing.RoutingParams],
) -> Callable[[int, bool], str | None]:
    """Shipped rules when an alias is found; the blended scores and their numbers without."""
    cent_ex, cent_q = cosines
    b_ex, n_ex, b_q, n_q, meaning = no_alias

    def mixed(i: int, on_corpus: bool) -> str | None:
        alias = (bench.q_alias if on_corpus else bench.ex_alias)[i][0]
        if alias is not None:
            cos, none = (cent_q, bench.none_q) if on_corpus else (cent_ex, bench.none_ex)
            return routing.decide(bench.evidence(i, cos, none, on_corpus), shipped).concept
        scores, nearest = (b_q, n_q) if on_corpus else (b_ex, n_ex)
        return routing.decide(bench.evidence(i, scores, nearest, on_corpus), meaning).concept

    return mixed


def lr_decide(probabilities: Any, t: float, none: int) -> Any:
    best = probabilities.argmax(1)
    return np.where((best != none) & (probabilities.max(1) >= t), best, none)


if __name__ == "__main__":
    main()
