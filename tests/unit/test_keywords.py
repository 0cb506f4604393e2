"""The keyword half of hybrid search: text analysis and the FTS5 BM25 index (no Chroma)."""

from __future__ import annotations

import threading

import pytest

from tools.documents.keywords import KeywordIndex, contains_all, keywords, stopwords


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Halvard Bridge", ["halvard", "bridge"]),  # case folded, stop words out
        ("CAFÉ Straße naïve", ["cafe", "strasse", "naive"]),  # accents off, casefold
        ("ＡＢＣ１２３", ["abc123"]),  # full-width letters and digits: NFKC
        ("AF-CB20", ["af", "cb20", "afcb20"]),  # parts, then the joined identifier
        ("AB-1000-A", ["ab", "1000", "ab1000a"]),  # "a" is a stop word, the joined form stays
        ("bin R5/S3.", ["bin", "r5", "s3", "r5s3"]),
        ("1,284.50 pounds", ["1", "284", "50", "128450", "pounds"]),
        ("12.34 EUR", ["12", "34", "1234", "eur"]),
        ("E7", ["e7"]),
        ("well-known custom", ["well", "known", "custom"]),  # no digit: no joined form
        ("snake_case words", ["snake", "case", "words"]),
        ("don't stop", ["stop"]),  # "don" and "t" are stop words
        ("What is it?", []),
        ("", []),
        ("?!", []),
        ("東京都の地下鉄", ["東京都の地下鉄"]),  # no spaces: one word
    ],
)
def test_keywords(text: str, expected: list[str]) -> None:
    assert keywords(text) == expected


def test_stop_words_are_lower_case_function_words() -> None:
    words = stopwords()
    assert {"the", "what", "is", "of"} <= words
    assert all(w == w.lower() and w.isalpha() for w in words)
    assert not {"bridge", "kettle", "warranty", "error"} & words


def test_an_identifier_matches_however_it_is_typed() -> None:
    index = KeywordIndex()
    index.reset([("part", "Use part AB-1000-A."), ("other", "Use part AB-2000-B.")], 0)
    for typed in ("AB-1000-A", "ab1000a", "AB1000A", "ab-1000-a"):
        assert index.search(typed, 5)[0].id == "part", typed


def test_rare_words_rank_first_and_chunks_without_a_keyword_are_left_out() -> None:
    index = KeywordIndex()
    index.reset(
        [
            ("fuse", "The espresso machine takes fuse ZQ-9090-Z."),
            ("machine", "The washing machine has a door."),
            ("none", "Nothing in common here."),
        ],
        0,
    )
    hits = index.search("Which fuse does the espresso machine take?", 10)
    assert [h.id for h in hits] == ["fuse", "machine"]
    assert hits[0].score > hits[1].score > 0
    assert index.search("the of and", 10) == []  # only stop words
    assert index.search("zebra", 10) == []
    assert index.search("fuse", 0) == []


def test_upsert_replaces_and_delete_forgets() -> None:
    index = KeywordIndex()
    assert not index.built
    index.reset([("a", "apple pie"), ("b", "banana bread")], "g1")
    assert index.built and index.generation == "g1" and len(index) == 2
    index.upsert([("a", "cherry tart"), ("c", "apple crumble")])
    assert len(index) == 3
    assert [h.id for h in index.search("apple", 5)] == ["c"]  # a's old text is gone
    assert [h.id for h in index.search("cherry", 5)] == ["a"]
    index.delete(["a", "missing"])
    assert len(index) == 2 and index.search("cherry", 5) == []
    index.reset([("z", "zucchini")], "g2")
    assert len(index) == 1 and index.search("banana", 5) == [] and index.generation == "g2"


def test_the_index_can_be_used_from_several_threads() -> None:
    index = KeywordIndex()
    index.reset([(f"c{i}", f"chunk number {i} about word{i % 10}") for i in range(500)], 0)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                index.upsert([(f"t{n}-{i}", f"thread {n} wrote word{i % 10}")])
                assert index.search(f"word{i % 10}", 5)
                index.delete([f"t{n}-{i}"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(index) == 500


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("Maureen Okafor", "The treasurer, Maureen Okafor, reported", True),
        ("maureen okafor?", "MAUREEN OKAFOR", True),
        ("AF-CB20", "part number AF-CB20 every 120 days", True),
        ("afcb20", "part number AF-CB20", True),
        ("Maureen Okafor", "Maureen Smith and Declan Okafor", True),  # words, not a phrase
        ("Maureen Okafor", "Maureen Smith", False),
        ("What is the capital of Australia?", "Canberra is the capital.", False),
        ("What is it?", "What is it?", False),  # no keywords: never vacuously true
    ],
)
def test_contains_all(query: str, text: str, expected: bool) -> None:
    assert contains_all(query, text) is expected
