"""Retrieval quality over the generated corpus, on a real on-disk Chroma and real embeddings.

Every question of ``tests/rag_corpus.py`` is searched with ``DocumentStore.search(q, k=3)``
(hybrid: vectors and BM25 keywords fused, the default) and, for comparison, with the
vectors alone: hit@1 and hit@3 count the questions whose expected file ranks first / among
the three; the PDF questions must get the right page first; the configured
``retrieval.min_score`` must let the answerable questions through and keep the off-topic
ones out; and bare names and numbers ("AF-CB20", "Maureen Okafor") must be found. The
numbers are printed (``-s``) and repeated in the terminal summary under "measurements".

Measured on this corpus (49 questions, 38 chunks of at most 200 word pieces): hybrid hit@1
1.00, hit@3 1.00 (vectors alone 0.98 / 1.00); names and numbers hit@3 10/10 (vectors alone
6/10); top-1 cosine of answerable questions 0.37-0.84 (median 0.61), of off-topic ones
0.05-0.23. Questions near a document's topic whose answer is not there score up to 0.71:
no threshold can tell them apart, the prompt has to.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from graph.settings import load_settings
from tests.support.rag_corpus import INJECTION_MARKER, QA, Corpus, write_corpus
from tools.documents.ingest import ingest
from tools.documents.retrieval import contextual_query
from tools.documents.store import DocumentStore, Passage
from tools.prompting import Turn

pytestmark = pytest.mark.integration

K = 3
HIT3_GOAL = 0.9  # the goal
HIT1_FLOOR = 0.9  # measured 0.98 (48 of 49)
FACT3_FLOOR = 0.9  # measured 1.00: the answer's words are in one of the three passages
KEPT_FLOOR = 0.95  # answerable questions whose right passage clears min_score (0.98 at 0.35)


@dataclass(frozen=True)
class Ranked:
    """One question and what the store returned for it."""

    qa: QA
    passages: list[Passage]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.passages]

    @property
    def hit1(self) -> bool:
        return bool(self.passages) and self.passages[0].name == self.qa.expected_source_name

    @property
    def hit3(self) -> bool:
        return self.qa.expected_source_name in self.names[:3]

    @property
    def fact3(self) -> bool:
        fact = _words(self.qa.answer_fact)
        return any(fact in _words(p.text) for p in self.passages[:3])

    def best_right_score(self) -> float:
        """The highest score of a passage from the expected file (0 when none came back)."""
        scores = [p.score for p in self.passages if p.name == self.qa.expected_source_name]
        return max(scores, default=0.0)

    def describe(self) -> str:
        found = ", ".join(f"{p.name}{_page(p)} {p.score:.3f}" for p in self.passages)
        return f"{self.qa.question!r} -> expected {self.qa.expected_source_name}; got {found}"


@dataclass(frozen=True)
class Measured:
    """The corpus, its store, and the ranked answers to every question."""

    corpus: Corpus
    store: DocumentStore
    answerable: list[Ranked]
    """Hybrid search (the default)."""
    vectors_only: list[Ranked]
    off_topic: dict[str, list[Passage]]
    near: dict[str, list[Passage]]
    names: list[Ranked]
    """Bare names and numbers, hybrid."""
    names_vectors_only: list[Ranked]


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _page(passage: Passage) -> str:
    return f" p{passage.page}" if passage.page else ""


def _top(passages: Sequence[Passage]) -> float:
    return passages[0].score if passages else 0.0


def _spread(scores: Sequence[float]) -> str:
    ordered = sorted(scores)
    return f"min {ordered[0]:.2f} median {statistics.median(ordered):.2f} max {ordered[-1]:.2f}"


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Measured]:
    """Ingest the corpus once for this module and search every question."""
    root = tmp_path_factory.mktemp("retrieval-quality")
    with pytest.MonkeyPatch.context() as env:  # the module runs before the per-test fixtures
        for key in [k for k in os.environ if k.startswith("ASSISTANT_")]:
            env.delenv(key)
        settings = load_settings(
            data_dir=str(root / "data"),
            model={"backend": "fake"},
            chroma={"path": str(root / "chroma")},
        )
    corpus = write_corpus(root / "docs")
    store = DocumentStore(settings, "quality")
    report = ingest(store, corpus.paths)
    assert not report.failed and not report.skipped, report
    assert {Path(f.path).name for f in report.added} == {p.name for p in corpus.paths}
    assert settings.retrieval.hybrid  # the default

    def vectors(query: str) -> list[Passage]:
        return store.search_by_vector(store.embeddings.embed_query(query), K)

    names = [QA(query, name, query) for query, name in corpus.names_and_numbers]
    yield Measured(
        corpus=corpus,
        store=store,
        answerable=[Ranked(qa, store.search(qa.question, K)) for qa in corpus.qas],
        vectors_only=[Ranked(qa, vectors(qa.question)) for qa in corpus.qas],
        off_topic={q: store.search(q, K) for q in corpus.unanswerable},
        near={q: store.search(q, K) for q in corpus.near_unanswerable},
        names=[Ranked(qa, store.search(qa.question, K)) for qa in names],
        names_vectors_only=[Ranked(qa, vectors(qa.question)) for qa in names],
    )


def test_the_corpus_has_enough_questions(measured: Measured) -> None:
    corpus = measured.corpus
    assert len(corpus.qas) >= 24
    assert 8 <= len(corpus.paths) <= 12
    assert {p.suffix for p in corpus.paths} == {".md", ".txt", ".html", ".pdf"}
    assert {qa.expected_source_name for qa in corpus.qas} == {p.name for p in corpus.paths}
    assert any(qa.followup for qa in corpus.qas)
    assert {qa.page for qa in corpus.qas if qa.page} == {1, 2, 3, 4}


def test_hit_rates(measured: Measured, report_measurement: Callable[[str], None]) -> None:
    ranked = measured.answerable
    n = len(ranked)
    hit1 = sum(r.hit1 for r in ranked) / n
    hit3 = sum(r.hit3 for r in ranked) / n
    fact3 = sum(r.fact3 for r in ranked) / n
    vectors1 = sum(r.hit1 for r in measured.vectors_only) / n
    vectors3 = sum(r.hit3 for r in measured.vectors_only) / n
    report_measurement(
        f"retrieval quality (hybrid): hit@1 {hit1:.2f} hit@3 {hit3:.2f} answer-in-top-3 "
        f"{fact3:.2f} over {n} questions ({measured.store.count()} chunks, "
        f"{len(measured.corpus.paths)} files); vectors alone hit@1 {vectors1:.2f} "
        f"hit@3 {vectors3:.2f}"
    )
    misses = [r.describe() for r in ranked if not r.hit1]
    if misses:
        report_measurement("  ranked another file first: " + "; ".join(misses))
    assert hit3 >= HIT3_GOAL, "\n".join(r.describe() for r in ranked if not r.hit3)
    assert hit1 >= HIT1_FLOOR, "\n".join(misses)
    assert fact3 >= FACT3_FLOOR, "\n".join(r.describe() for r in ranked if not r.fact3)
    # hybrid is on by default because it is no worse than the vectors on these questions
    assert (hit1, hit3) >= (vectors1, vectors3)


def test_bare_names_and_numbers_are_found(
    measured: Measured, report_measurement: Callable[[str], None]
) -> None:
    hybrid = sum(r.hit3 for r in measured.names)
    vectors = sum(r.hit3 for r in measured.names_vectors_only)
    n = len(measured.names)
    report_measurement(f"names and numbers: hit@3 hybrid {hybrid}/{n}, vectors alone {vectors}/{n}")
    assert n == 10
    assert hybrid == n, [r.describe() for r in measured.names if not r.hit3]
    # their cosine is often under min_score: the passage counts because it holds every
    # keyword of the query
    for ranked in measured.names:
        right = [p for p in ranked.passages if p.name == ranked.qa.expected_source_name]
        assert any(p.keyword_match for p in right), ranked.describe()


def test_pdf_questions_get_the_right_page_first(measured: Measured) -> None:
    on_pages = [r for r in measured.answerable if r.qa.page is not None]
    assert len(on_pages) >= 4
    for ranked in on_pages:
        top = ranked.passages[0]
        assert (top.name, top.page) == (ranked.qa.expected_source_name, ranked.qa.page), (
            ranked.describe()
        )


def test_min_score_keeps_answers_and_drops_off_topic_questions(
    measured: Measured, report_measurement: Callable[[str], None]
) -> None:
    threshold = load_settings().retrieval.min_score
    right = [r.best_right_score() for r in measured.answerable]
    top1 = [_top(r.passages) for r in measured.answerable]
    off = {q: _top(p) for q, p in measured.off_topic.items()}
    near = {q: _top(p) for q, p in measured.near.items()}
    report_measurement(
        "retrieval scores (cosine): answerable top-1 "
        f"{_spread(top1)}; right passage {_spread(right)}; "
        f"off-topic top-1 {_spread(list(off.values()))}; "
        f"near-topic unanswerable top-1 {_spread(list(near.values()))}"
    )
    kept = sum(score >= threshold for score in right) / len(right)
    near_passing = sum(score >= threshold for score in near.values())
    report_measurement(
        f"  at min_score {threshold:.2f}: {kept:.0%} of answerable questions keep their "
        f"passage, {sum(s >= threshold for s in off.values())}/{len(off)} off-topic and "
        f"{near_passing}/{len(near)} near-topic unanswerable questions get passages"
    )
    assert all(score < threshold for score in off.values()), off
    # ...and no off-topic question holds all its keywords in a passage either
    matched = {
        q: [p.name for p in found if p.keyword_match] for q, found in measured.off_topic.items()
    }
    assert not any(matched.values()), matched
    assert kept >= KEPT_FLOOR, [
        r.describe() for r in measured.answerable if r.best_right_score() < threshold
    ]


def test_followups_need_the_conversation(
    measured: Measured, report_measurement: Callable[[str], None]
) -> None:
    """The bare follow-up ("and when was it built?") vs. the fallback query without a model.

    The standalone forms are among the answerable questions; this measures what the
    ``retrieve`` node gets when it cannot rewrite: the previous question plus the new one.
    """
    qas = measured.corpus.qas
    pairs = [(qas[i - 1], qa) for i, qa in enumerate(qas) if qa.followup and i > 0]
    bare: list[Ranked] = []
    contextual: list[Ranked] = []
    for previous, qa in pairs:
        assert qa.followup is not None
        history = [Turn((HumanMessage(previous.question), AIMessage("(answer)")))]
        query = contextual_query(history, qa.followup)
        bare.append(Ranked(qa, measured.store.search(qa.followup, K)))
        contextual.append(Ranked(qa, measured.store.search(query, K)))

    def rates(ranked: list[Ranked]) -> str:
        hit1 = sum(r.hit1 for r in ranked) / len(ranked)
        hit3 = sum(r.hit3 for r in ranked) / len(ranked)
        return f"hit@1 {hit1:.2f} hit@3 {hit3:.2f}"

    report_measurement(
        f"follow-ups ({len(pairs)}): bare {rates(bare)}; "
        f"after the previous question {rates(contextual)}"
    )
    assert all(r.hit3 for r in contextual), [r.describe() for r in contextual if not r.hit3]


def test_injection_document_is_found_like_any_other(measured: Measured) -> None:
    """The injection note is found for its real subject, the injection in the passage."""
    name = measured.corpus.injection_path.name
    fern = [r for r in measured.answerable if r.qa.expected_source_name == name]
    assert fern and all(r.hit1 for r in fern), [r.describe() for r in fern]
    assert all(INJECTION_MARKER in r.passages[0].text for r in fern)
