"""Unit tests for tools.routing: normalisation, loading, routing, ranking, fuzzy, logging."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.routing_commands import (
    QUESTIONS_AS_OBJECTS,
    ROUTED_ALONE,
    SUMMARY_LOOK_ALIKES,
    SUMMARY_REQUESTS,
)
from tests.support.routing_heldout import HELD_OUT
from tools import routing
from tools.models.embeddings import CachedQueryEmbeddings
from tools.routing import (
    DEFAULT_CUTOFF,
    FUZZY_EDGE_TOKENS,
    PROMPTS_DIR,
    AliasMatch,
    AliasMatcher,
    Concept,
    ConceptFile,
    ConceptRouter,
    Evidence,
    RoutingParams,
    calibrate,
    corrected,
    cross_validated,
    decide,
    lead_positions,
    lexical_terms,
    load_concept_file,
    load_concepts,
    load_system_prompt,
    normalise,
    request_text,
    typo_of,
)

EXPECTED_CONCEPTS = {
    "explain_simply",
    "define_term",
    "compare",
    "step_by_step",
    "summarise",
    "summarise_book",
    "joke",
    "fun_fact",
    "explain_code",
    "debug_code",
    "pros_cons",
    "analogy",
    "quiz",
    "translate",
    "brainstorm",
    "proofread",
}


@pytest.fixture(scope="module")
def matcher() -> AliasMatcher:
    return AliasMatcher.from_file()


def make_matcher(**aliases: list[str]) -> AliasMatcher:
    """A matcher over made-up concepts, to test one ranking rule at a time."""
    return AliasMatcher(
        {name: Concept(name, f"prompt for {name}", tuple(a)) for name, a in aliases.items()}
    )


def write(tmp_path: Path, text: str, name: str = "concepts.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- normalise


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Explain Like I'm Five", ["explain", "like", "i", "am", "five"]),
        ("explain like im five", ["explain", "like", "i", "am", "five"]),
        ("explain like I am five", ["explain", "like", "i", "am", "five"]),
        ("Explain like I\u2019m five", ["explain", "like", "i", "am", "five"]),  # curly quote
        ("to a 5-year-old", ["to", "a", "5", "year", "old"]),  # hyphens split words
        ("to a 5\u2013year\u2014old", ["to", "a", "5", "year", "old"]),  # en/em dashes too
        ("\u201cquoted\u201d, (punctuation)!?", ["quoted", "punctuation"]),
        ("\uff25\uff2c\uff29\uff15", ["eli5"]),  # full-width letters: NFKC
        ("STRASSE Stra\u00dfe", ["strasse", "strasse"]),  # casefold, not just lower()
        ("in layman's terms", ["in", "laymans", "terms"]),  # inner apostrophe dropped
        ("What's this?", ["what", "is", "this"]),
        ("TL;DR", ["tl", "dr"]),
        ("snake_case", ["snake", "case"]),
        ("", []),
        ("?!... --", []),
    ],
)
def test_normalise(text: str, tokens: list[str]) -> None:
    assert normalise(text) == tokens


# --------------------------------------------------------------------------- shipped data


def test_shipped_file_has_16_concepts_and_enough_aliases(matcher: AliasMatcher) -> None:
    concepts = load_concepts()
    assert set(concepts) == EXPECTED_CONCEPTS
    assert matcher.alias_count == sum(len(c.aliases) for c in concepts.values())
    assert matcher.alias_count >= 55
    for concept in concepts.values():
        assert len(concept.aliases) >= 3, concept.name
        assert concept.prompt and concept.prompt == concept.prompt.strip()


def test_shipped_aliases_are_unique_across_concepts() -> None:
    owners: dict[tuple[str, ...], str] = {}
    for concept in load_concepts().values():
        for alias in concept.aliases:
            key = tuple(normalise(alias))
            assert key not in owners, f"{alias!r} in {concept.name} and {owners[key]}"
            owners[key] = concept.name


@pytest.mark.parametrize(
    "alias",
    [
        "explain like i'm five",
        "explain like i'm 5",
        "like i'm 5",
        "to a 5-year-old",
        "eli5",
        "summarise this book",
        "summarize the book",
    ],
)
def test_required_aliases_are_shipped(alias: str) -> None:
    shipped = {tuple(normalise(a)) for c in load_concepts().values() for a in c.aliases}
    assert tuple(normalise(alias)) in shipped


@pytest.mark.parametrize("generic", ["what", "what is", "what does", "how", "explain", "is"])
def test_no_generic_alias_is_shipped(generic: str) -> None:
    shipped = {tuple(normalise(a)) for c in load_concepts().values() for a in c.aliases}
    assert tuple(normalise(generic)) not in shipped


def test_default_paths_point_at_prompts_dir() -> None:
    assert (PROMPTS_DIR / "concepts.yaml").is_file()
    assert (PROMPTS_DIR / "system.md").is_file()
    assert load_concepts(PROMPTS_DIR / "concepts.yaml") == load_concepts()


def test_system_prompt_is_short_and_stripped() -> None:
    prompt = load_system_prompt()
    assert prompt == prompt.strip()
    assert 20 < len(prompt.split()) <= 120
    assert "locally" in prompt


@pytest.mark.parametrize("text", ["", "   \n\t\n"])
def test_empty_system_prompt_raises(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text, "system.md")
    with pytest.raises(ValueError, match=r"system\.md.*empty"):
        load_system_prompt(path)


def test_system_prompt_is_read_from_given_path(tmp_path: Path) -> None:
    path = write(tmp_path, "\n  Be brief.  \n", "system.md")
    assert load_system_prompt(path) == "Be brief."


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("message", "concept"),
    [
        ("Explain like I'm five: how do vaccines work?", "explain_simply"),
        ("explain like i'm 5 what a black hole is", "explain_simply"),
        ("Explain quantum computing like I\u2019m 5", "explain_simply"),
        ("Explain it like im five", "explain_simply"),
        ("explain like I am five", "explain_simply"),
        ("Describe gravity to a 5-year-old", "explain_simply"),
        ("Describe gravity to a 5 year old", "explain_simply"),
        ("ELI5 inflation", "explain_simply"),
        ("eli5: why is the sky blue", "explain_simply"),
        ("Summarise this book: Dune", "summarise_book"),
        ("Can you summarize the book 1984 by Orwell?", "summarise_book"),
        ("What's the book about? The Hobbit", "summarise_book"),
        ("Summarise this article for me", "summarise"),
        ("TL;DR of this thread please", "summarise"),
        ("Define entropy", "define_term"),
        ("What is the definition of entropy?", "define_term"),
        ('What does the word "ephemeral" mean?', "define_term"),
        ("What does API stand for?", "define_term"),
        ("Compare Python and Rust", "compare"),
        ("What's the difference between TCP and UDP?", "compare"),
        ("Python vs. JavaScript for a beginner", "compare"),
        ("How do I bake bread step-by-step?", "step_by_step"),
        ("Walk me through setting up SSH keys", "step_by_step"),
        ("Tell me a joke about cats", "joke"),
        ("Got any jokes?", "joke"),
        ("Give me a fun fact about octopuses", "fun_fact"),
        ("Explain this code: print(1)", "explain_code"),
        ("What does this code do?", "explain_code"),
        ("Walk me through this code please", "explain_code"),
        ("Can you debug this?", "debug_code"),
        ("I'm getting an error: KeyError 'x'", "debug_code"),
        ("What are the pros and cons of remote work?", "pros_cons"),
        ("Advantages and disadvantages of nuclear power", "pros_cons"),
        ("Explain DNS with an analogy", "analogy"),
        ("Quiz me on the French revolution", "quiz"),
        ("Translate 'good morning' into Spanish", "translate"),
        ("How do you say thank you in Japanese?", "translate"),
        ("Brainstorm names for my bakery", "brainstorm"),
        ("Give me ideas for a birthday party", "brainstorm"),
        ("Proofread my cover letter", "proofread"),
        ("Fix the grammar in this paragraph", "proofread"),
        ("CAN YOU REPHRASE THIS?", "proofread"),
    ],
)
def test_routes_to_concept(matcher: AliasMatcher, message: str, concept: str) -> None:
    found = matcher.match(message)
    assert found is not None, message
    assert found.concept == concept
    assert found.kind == "exact"
    assert found.score == 1.0


@pytest.mark.parametrize(
    "message",
    [
        "What time is it?",
        "What is the capital of France?",
        "What does it cost?",
        "I love jokers in cards",
        "the step function in numpy",
        "This painting is incomparable",
        "Why is my variable undefined?",
        "I stepped on a lego",
        "Her summary was great",  # "summary of" needs the "of"
        "I'm five minutes away",  # "like i'm five" needs the "like"
        "We had a fun time at the facts museum",
        "He is a translator",
        "My quizzical cat",
        "The book is on the table",
        "A debugger is attached",
        "",
    ],
)
@pytest.mark.parametrize("fuzzy", [False, True])
def test_near_misses_do_not_route(matcher: AliasMatcher, message: str, fuzzy: bool) -> None:
    assert matcher.match(message, fuzzy=fuzzy) is None
    assert matcher.candidates(message, fuzzy=fuzzy) == []


@pytest.mark.parametrize(
    ("message", "alias", "position"),
    [
        ("undefined define", "define", 1),
        ("incomparable, compare", "compare", 1),
        ("jokers joke", "joke", 1),
    ],
)
def test_aliases_match_whole_words_only(message: str, alias: str, position: int) -> None:
    custom = make_matcher(a=[alias])
    assert [(m.alias, m.position) for m in custom.candidates(message)] == [(alias, position)]


def test_multi_word_alias_needs_contiguous_tokens() -> None:
    custom = make_matcher(a=["step by step"])
    assert custom.match("step by step") is not None
    assert custom.match("step one by step") is None
    assert custom.match("by step step") is None


# --------------------------------------------------------------------------- ranking


@pytest.mark.parametrize(
    ("aliases", "message", "concept", "alias"),
    [
        # More tokens win, whatever the file order.
        (
            {"generic": ["summarise"], "book": ["summarise this book"]},
            "summarise this book: Dune",
            "book",
            "summarise this book",
        ),
        (
            {"code": ["explain"], "simple": ["explain like i'm five"]},
            "Explain like I'm five: recursion",
            "simple",
            "explain like i'm five",
        ),
        (
            {"simple": ["explain like i'm five"], "code": ["explain"]},
            "explain like im five",
            "simple",
            "explain like i'm five",
        ),
        # A longer alias later in the message still beats a shorter one earlier.
        (
            {"cmp": ["compare"], "pc": ["pros and cons"]},
            "compare the pros and cons",
            "pc",
            "pros and cons",
        ),
        # Same length: the earliest position wins.
        (
            {"tr": ["translate"], "jk": ["joke"]},
            "translate this joke",
            "tr",
            "translate",
        ),
        (
            {"tr": ["translate"], "jk": ["joke"]},
            "a joke to translate",
            "jk",
            "joke",
        ),
    ],
)
def test_most_specific_match_wins(
    aliases: dict[str, list[str]], message: str, concept: str, alias: str
) -> None:
    found = make_matcher(**aliases).match(message)
    assert found is not None
    assert (found.concept, found.alias) == (concept, alias)


@pytest.mark.parametrize(
    ("message", "concept"),
    [
        ("Summarise this book: Dune", "summarise_book"),  # not the generic "summarise"
        ("Can you explain this code step by step?", "explain_code"),  # 3 tokens each: earlier
        ("Walk me through this code", "explain_code"),  # beats "walk me through"
        ("Compare the pros and cons of Go", "pros_cons"),  # beats "compare"
        ("Explain it with an analogy, compare it to something", "analogy"),
    ],
)
def test_shipped_ranking(matcher: AliasMatcher, message: str, concept: str) -> None:
    found = matcher.match(message)
    assert found is not None
    assert found.concept == concept


def test_candidates_are_all_matches_best_first(matcher: AliasMatcher) -> None:
    found = matcher.candidates("Please summarise this book, then quiz me")
    assert [(m.concept, m.alias, m.position, m.length) for m in found] == [
        ("summarise_book", "summarise this book", 1, 3),
        ("quiz", "quiz me", 5, 2),
        ("summarise", "summarise", 1, 1),
        ("quiz", "quiz", 5, 1),
    ]
    assert matcher.match("Please summarise this book, then quiz me") == found[0]


def test_match_is_a_frozen_dataclass(matcher: AliasMatcher) -> None:
    found = matcher.match("eli5 gravity")
    assert found == AliasMatch("explain_simply", "eli5", "exact", 1.0, 0, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.concept = "joke"  # type: ignore[misc]


# --------------------------------------------------------------------------- fuzzy


@pytest.mark.parametrize(
    ("message", "concept"),
    [
        ("sumarize this book: Dune", "summarise_book"),
        ("explian liek im five", "explain_simply"),
        ("explain like im fivee", "explain_simply"),
        ("tel me a jokee", "joke"),
        ("pros adn cons of Go", "pros_cons"),
        ("stepp by step please", "step_by_step"),
    ],
)
def test_fuzzy_catches_typos(matcher: AliasMatcher, message: str, concept: str) -> None:
    assert matcher.match(message) is None  # off by default
    found = matcher.match(message, fuzzy=True)
    assert found is not None
    assert found.concept == concept
    assert found.kind == "fuzzy"
    assert DEFAULT_CUTOFF <= found.score < 1.0


def test_typo_can_still_match_exactly_through_a_shorter_alias(matcher: AliasMatcher) -> None:
    # "explian like im five" holds the alias "like i'm five" exactly.
    found = matcher.match("explian like im five", fuzzy=True)
    assert found is not None
    assert (found.concept, found.kind, found.alias) == ("explain_simply", "exact", "like i'm five")


def test_fuzzy_never_beats_exact() -> None:
    custom = make_matcher(generic=["summarise"], book=["summarise this book"])
    found = custom.candidates("summarise this boook", fuzzy=True)
    assert [(m.concept, m.kind) for m in found] == [("generic", "exact"), ("book", "fuzzy")]
    assert found[1].length > found[0].length  # longer, yet ranked below the exact match


def test_fuzzy_skips_spans_matched_exactly() -> None:
    custom = make_matcher(us=["summarize this book"], uk=["summarise this book"])
    found = custom.candidates("summarize this book", fuzzy=True)
    assert [(m.concept, m.kind) for m in found] == [("us", "exact")]


@pytest.mark.parametrize(
    "message", ["I translated it yesterday", "He debugs for a living", "quizz"]
)
@pytest.mark.parametrize("cutoff", [DEFAULT_CUTOFF, 0.5])
def test_fuzzy_ignores_single_word_aliases(message: str, cutoff: float) -> None:
    # Near-words ("translated" ~ "translate") are real words far more often than typos.
    custom = make_matcher(tr=["translate"], dbg=["debug"], qz=["quiz"])
    assert custom.match(message, fuzzy=True, cutoff=cutoff) is None


def test_cutoff_controls_fuzzy(matcher: AliasMatcher) -> None:
    found = matcher.match("sumarize this book", fuzzy=True)
    assert found is not None
    assert matcher.match("sumarize this book", fuzzy=True, cutoff=found.score) == found
    assert matcher.match("sumarize this book", fuzzy=True, cutoff=0.99) is None
    assert matcher.match("sumarize this book", fuzzy=True, cutoff=1.0) is None


def test_fuzzy_on_long_messages_scans_only_the_ends(matcher: AliasMatcher) -> None:
    filler = "the quick brown fox jumps over a lazy dog " * 20
    assert len(normalise(filler)) > 2 * FUZZY_EDGE_TOKENS
    end = matcher.match(filler + "sumarize this book", fuzzy=True)
    start = matcher.match("sumarize this book " + filler, fuzzy=True)
    assert end is not None and end.concept == "summarise_book"
    assert start is not None and start.concept == "summarise_book"
    assert matcher.match(filler + "sumarize this book " + filler, fuzzy=True) is None
    # Exact matching always scans everything.
    middle = matcher.match(filler + "summarise this book " + filler)
    assert middle is not None and middle.concept == "summarise_book"


@pytest.mark.parametrize("cutoff", [-0.01, 1.01, 2, float("nan"), float("inf")])
@pytest.mark.parametrize("fuzzy", [False, True])
def test_bad_cutoff_raises(matcher: AliasMatcher, cutoff: float, fuzzy: bool) -> None:
    with pytest.raises(ValueError, match="cutoff"):
        matcher.match("eli5", fuzzy=fuzzy, cutoff=cutoff)
    with pytest.raises(ValueError, match="cutoff"):
        matcher.candidates("eli5", fuzzy=fuzzy, cutoff=cutoff)


@pytest.mark.parametrize("cutoff", [0, 0.0, 0.5, 1])
def test_cutoff_bounds_are_inclusive(matcher: AliasMatcher, cutoff: float) -> None:
    assert matcher.match("eli5", fuzzy=True, cutoff=cutoff) is not None


def _lcs(a: str, b: str) -> int:
    """Length of the longest common subsequence (plain dynamic programming)."""
    row = [0] * (len(b) + 1)
    for char in a:
        diagonal = 0
        for j, other in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if char == other else max(row[j], row[j - 1])
    return row[-1]


def _every_fuzzy_pair(text: str, cutoff: float) -> set[tuple[str, int, int, float]]:
    """Fuzzy matches by scoring every alias against every window, no shortcuts.

    One-word aliases of fewer than six letters are skipped, and a pair counts only with the
    shape of a typo (``typo_of``).
    """
    tokens = normalise(text)
    aliases = [a for c in load_concepts().values() for a in c.aliases]
    exact = {(m.position, m.length) for m in AliasMatcher.from_file().candidates(text)}
    found = set()
    for alias in aliases:
        alias_tokens = normalise(alias)
        size = len(alias_tokens)
        joined = " ".join(alias_tokens)
        if size < 2 and len(joined) < 6:
            continue
        for position in range(len(tokens) - size + 1):
            if (position, size) in exact:
                continue
            window = " ".join(tokens[position : position + size])
            score = 2 * _lcs(window, joined) / (len(window) + len(joined))
            if score >= cutoff and typo_of(tokens[position : position + size], alias_tokens):
                found.add((alias, position, size, score))
    return found


@pytest.mark.parametrize(
    "text",
    [
        "sumarize this book: Dune",
        "Could you explian liek im five why the sky is blue",
        "pros adn cons of Go, then quizz me and tel me a jokee",
        "wlak me thru this cdoe step by stpe",
        "Summarise the minutes of the allotment society's autumn meeting",
    ],
)
@pytest.mark.parametrize("cutoff", [0.0, 0.5, 0.7, DEFAULT_CUTOFF, 0.95, 1.0])
def test_fuzzy_finds_every_pair_that_reaches_the_cutoff(
    matcher: AliasMatcher, text: str, cutoff: float
) -> None:
    # The score is 2 * LCS / (len(window) + len(alias)); rapidfuzz's pruning must not drop
    # a pair that reaches the cutoff, nor keep one that does not.
    found = {
        (m.alias, m.position, m.length, m.score)
        for m in matcher.candidates(text, fuzzy=True, cutoff=cutoff)
        if m.kind == "fuzzy"
    }
    assert found == _every_fuzzy_pair(text, cutoff)


def test_fuzzy_cutoff_equal_to_a_score_keeps_the_match(matcher: AliasMatcher) -> None:
    # "sumarize this book" vs "summarize this book": LCS 18 of 18 + 19 characters.
    found = matcher.match("sumarize this book", fuzzy=True)
    assert found is not None and found.score == 36 / 37
    for cutoff in (36 / 37, 36 / 37 - 1e-12):
        assert matcher.match("sumarize this book", fuzzy=True, cutoff=cutoff) == found
    assert matcher.match("sumarize this book", fuzzy=True, cutoff=36 / 37 + 1e-12) is None


# --------------------------------------------------------------------------- loading errors

VALID = """
concepts:
  joke:
    prompt: "Tell a joke."
    aliases: ["tell me a joke", "joke"]
"""


def test_valid_custom_file(tmp_path: Path) -> None:
    concepts = load_concepts(write(tmp_path, VALID))
    assert concepts == {"joke": Concept("joke", "Tell a joke.", ("tell me a joke", "joke"))}
    assert AliasMatcher.from_file(write(tmp_path, VALID)).alias_count == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("concepts: [unclosed", "invalid YAML"),
        ("", "top-level 'concepts'"),
        ("- a list\n", "top-level 'concepts'"),
        ("concepts: {}\n", "non-empty mapping"),
        ("concepts:\n  joke:\n    aliases: [joke]\n", "concept 'joke' is missing 'prompt'"),
        (
            "concepts:\n  joke:\n    prompt: '  '\n    aliases: [joke]\n",
            "concept 'joke': 'prompt' must be a non-empty string, not '  '",
        ),
        ("concepts:\n  joke:\n    prompt: 42\n    aliases: [joke]\n", "'prompt' must be .* not 42"),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: []\n",
            "'aliases' must be a non-empty list",
        ),
        ("concepts:\n  joke:\n    prompt: p\n", "concept 'joke' is missing 'aliases'"),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: joke\n",
            "'aliases' must be .* not 'joke'",
        ),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [joke, 5]\n",
            "concept 'joke': alias 2 must be a string, not 5",
        ),
        ("concepts:\n  joke:\n    prompt: p\n    aliases: [joke, null]\n", "alias 2 .* not None"),
        ("concepts:\n  joke:\n    prompt: p\n    aliases: ['?!']\n", "has no words"),
        (
            "concepts:\n  a:\n    prompt: p\n    aliases: [Step-by-step]\n"
            "  b:\n    prompt: p\n    aliases: [step by step]\n",
            "duplicate alias 'step by step' in concept 'b'.*'Step-by-step' in concept 'a'",
        ),
        (
            "concepts:\n  a:\n    prompt: p\n    aliases: [joke, JOKE!]\n",
            "duplicate alias",
        ),
        (
            "concepts:\n  a:\n    prompt: p\n    aliases: [x]\n"
            "  a:\n    prompt: q\n    aliases: [y]\n",
            "duplicate key 'a'",
        ),
        ("concepts:\n  Bad-Name:\n    prompt: p\n    aliases: [x]\n", "snake_case"),
        ("concepts:\n  joke: just a string\n", "must be a mapping"),
        (
            "concepts:\n  joke:\n    prompt: p\n    alias: [joke]\n",
            "concept 'joke' has unknown key 'alias'",
        ),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [x]\nextra: 1\n",
            "the file has unknown key 'extra'; expected a mapping with a top-level 'concepts'",
        ),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [joke]\n    commands: [pun]\n",
            r"concept 'joke': commands \['pun'\] are not among its aliases",
        ),
    ],
)
def test_corrupt_file_raises_naming_file_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text, "broken.yaml")
    with pytest.raises(ValueError, match=problem) as info:
        load_concepts(path)
    assert str(path) in str(info.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_concepts(tmp_path / "nope.yaml")


def test_matcher_rejects_duplicate_alias_across_concepts() -> None:
    with pytest.raises(ValueError, match="duplicate alias"):
        make_matcher(a=["fun fact"], b=["Fun-fact"])


def test_matcher_rejects_mismatched_names() -> None:
    with pytest.raises(ValueError, match="'a' holds concept named 'b'"):
        AliasMatcher({"a": Concept("b", "p", ("x",))})


# --------------------------------------------------------------------------- accessors


def test_concept_lookup(matcher: AliasMatcher) -> None:
    concept = matcher.concept("summarise_book")
    assert concept.name == "summarise_book"
    assert "summarise this book" in concept.aliases
    with pytest.raises(KeyError, match=r"unknown concept 'nope'.*summarise_book"):
        matcher.concept("nope")


# --------------------------------------------------------------------------- logging


def test_logs_candidates_and_winner(
    matcher: AliasMatcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="assistant.aliases")
    matcher.match("summarise this book: Dune")
    records = [r for r in caplog.records if r.name == "assistant.aliases"]
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any("concept=summarise_book" in m and "kind=exact" in m for m in debug)
    assert any("concept=summarise alias='summarise'" in m for m in debug)
    assert len(info) == 1
    assert "concept=summarise_book" in info[0]
    assert "alias='summarise this book'" in info[0]
    assert "kind=exact" in info[0] and "score=1.000" in info[0]
    assert "3 tokens beats 1" in info[0]
    assert "Dune" not in " ".join(debug + info)  # message text stays out of the logs


@pytest.mark.parametrize(
    ("message", "fuzzy", "reason"),
    [
        ("translate this joke", False, "position 0 beats 2"),
        ("summarise this boook", True, "exact beats fuzzy"),
        ("eli5", False, "no competing concept"),
    ],
)
def test_logged_reason(
    caplog: pytest.LogCaptureFixture, message: str, fuzzy: bool, reason: str
) -> None:
    custom = make_matcher(
        tr=["translate"],
        jk=["joke"],
        generic=["summarise"],
        book=["summarise this book"],
        simple=["eli5"],
    )
    caplog.set_level(logging.INFO, logger="assistant.aliases")
    custom.match(message, fuzzy=fuzzy)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert reason in caplog.records[0].getMessage()


def test_no_match_is_logged_at_debug(
    matcher: AliasMatcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="assistant.aliases")
    assert matcher.match("What time is it?") is None
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "no alias matched" in caplog.records[0].getMessage()


# --------------------------------------------------------------------------- by meaning

# A toy embedding: one dimension per word of this vocabulary (other words share the last
# one), so "meaning" is word overlap and every score can be worked out by hand.
_VOCAB = ["joke", "funny", "laugh", "define", "word", "mean", "weather", "train", "late"]


_TOY_MODELS = itertools.count()


class WordEmbeddings:
    """Deterministic stand-in for the embedding model, counting its calls."""

    def __init__(self) -> None:
        self.queries = 0
        self.documents = 0
        # Example vectors and classifiers are memoised per process by model name: a name
        # of its own keeps each instance apart (not id(), which a freed instance hands on:
        # a later test then found an earlier one's classifier and kept none on disk).
        self.model_name = f"toy-words-{next(_TOY_MODELS)}"

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * (len(_VOCAB) + 1)
        for token in normalise(text):
            vector[_VOCAB.index(token) if token in _VOCAB else len(_VOCAB)] += 1.0
        norm = sum(v * v for v in vector) ** 0.5 or 1.0
        return [v / norm for v in vector]

    def embed_query(self, text: str) -> list[float]:
        self.queries += 1
        return self._vector(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents += len(texts)
        return [self._vector(t) for t in texts]


TOY = """
concepts:
  joke:
    prompt: "Tell a joke."
    aliases: ["joke", "make me laugh"]
    examples: ["joke joke funny", "funny laugh joke", "laugh funny"]
  define_term:
    prompt: "Define it."
    aliases: ["define"]
    examples: ["define word", "word mean define", "mean word"]
no_concept: ["weather train", "train late", "weather late"]
routing:
  threshold: 0.5
  regularisation: 16
  alias_weight: 0.5
  lead_in: [please, can, you]
"""


@pytest.fixture
def toy(tmp_path: Path) -> ConceptRouter:
    return ConceptRouter(load_concept_file(write(tmp_path, TOY)), WordEmbeddings())


@pytest.mark.parametrize(
    ("text", "positions"),
    [
        ("tell me a joke", {0}),
        ("Please, can you define it", {0, 1, 2, 3}),  # lead-in words, then the request
        ("can you define it? please joke", {0, 1, 2, 4, 5}),  # each sentence starts one
        ("This traffic is no joke, what now?", {0, 5}),
        ("TL;DR: the council voted", {0, 1, 2}),
        ("", set()),
        ("?!", set()),
    ],
)
def test_lead_positions(text: str, positions: set[int]) -> None:
    assert lead_positions(text, frozenset({"please", "can", "you"})) == positions


def test_a_leading_alias_decides_before_a_more_specific_one_elsewhere(
    toy: ConceptRouter,
) -> None:
    alias, leads = toy.deciding_alias("define joke make me laugh")
    assert (alias and alias.alias, leads) == ("define", True)
    alias, leads = toy.deciding_alias("the word, make me laugh")  # a new clause leads
    assert (alias and alias.alias, leads) == ("make me laugh", True)
    alias, leads = toy.deciding_alias("no joke, a define")  # neither leads: the ranking
    assert (alias and alias.alias, leads) == ("joke", False)
    assert toy.deciding_alias("nothing here") == (None, False)


def test_lexical_terms_are_words_pairs_and_what_leads_each_clause() -> None:
    terms = lexical_terms("Please sum up my hours. It was translated", frozenset({"please"}))
    assert {"sum", "sum up", "up my", "hours it", "translated", "was translated"} <= terms
    assert {"^sum", "^sum up", "^it", "^it was"} <= terms
    assert "^please" not in terms and "translate" not in terms  # whole words, no stemming
    # inside a clause the same words do not lead
    assert "^sum" not in lexical_terms("I'm trying to sum up my hours")
    assert lexical_terms("?!") == frozenset()


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        # quoted material, single, double, curly or back quotes, is one word
        ("What's 'where is the library' in French?", "what's quotedtext in french?"),
        ('"Guten Tag" in English?', "quotedtext in english?"),
        ("Say \u201chello\u201d in Greek", "say quotedtext in greek"),
        ("How do I say \u2018it\u2019s raining\u2019 in Dutch", "how do i say quotedtext in dutch"),
        ("Run `ls -la` for me", "run quotedtext for me"),
        ("Is 'ciao' or 'salve' more polite?", "is quotedtext or quotedtext more polite?"),
        # an unclosed quote, or one running over a line break, is no quote
        ("Say 'hello in Greek", None),
        ("Say 'hello\nworld' in Greek", None),
        # apostrophes are not quotes
        ("Why doesn't my kids' app start?", "why doesn't my kids' app start?"),
        ("I'm sure it's fine", "i'm sure it's fine"),
        # code after the request, on its line or the next, is one word
        ("Why doesn't this work? x = [1, 2, 3]; x[3]", "why doesn't this work? codetext"),
        ("Explain this:\nfor k in d: print(k)", "explain this: codetext"),
        ("What's wrong? Here: while (i < 3) i--", "what's wrong? codetext"),
        ("What's wrong? Here it is:\n  while (i < 3) i--", "what's wrong? here it is: codetext"),
        ("I get an error: TypeError (str)", "i get an error: codetext"),
        # prose after a question or colon stays words, and so does a time
        ("Translate this: see you at 3:30", "translate this: see you at 3:30"),
        ("English to Polish please: where is the bathroom?", None),
        ("What happens when you read an undefined variable in C?", None),
        ("Is x = 5 valid Python", None),  # code, but no request before it
    ],
)
def test_request_text_stands_one_word_for_quoted_text_and_trailing_code(
    text: str, wanted: str | None
) -> None:
    assert request_text(text).split() == (wanted or text.lower()).split()


def test_word_features_read_the_request_not_its_material() -> None:
    terms = lexical_terms("What's 'where is the library' in French?")
    assert {"quotedtext", "is quotedtext", "quotedtext in", "in french"} <= terms
    assert not {"where", "library", "where is"} & terms  # the words to translate
    terms = lexical_terms("'Thank you' in Japanese?")
    assert {"^quotedtext", "^quotedtext in"} <= terms
    terms = lexical_terms("Why does this fail? total = sum(x for x in xs)")
    assert {"^why does", "fail", "codetext", "fail codetext"} <= terms
    assert not {"sum", "total", "xs"} & terms


def test_word_features_are_tf_idf_of_the_file_s_common_terms(tmp_path: Path) -> None:
    text = TOY.replace("  alias_weight: 0.5\n", "  alias_weight: 0.5\n  lexical_weight: 2\n")
    router = ConceptRouter(load_concept_file(write(tmp_path, text)), WordEmbeddings())
    vocabulary = router.vocabulary
    # a term of a single training text is a topic, not a way of asking: no column
    assert "joke" in vocabulary and "joke joke" not in vocabulary
    assert list(vocabulary) == sorted(vocabulary)
    features = router.lexical_features("a funny joke about trains", 2.0)
    assert features.shape == (len(vocabulary),)
    assert abs(float((features**2).sum()) ** 0.5 - 2.0) < 1e-5  # length = the weight
    on = {term for term, index in vocabulary.items() if features[index] > 0}
    assert on == {"funny", "joke"}  # "a", "about", "trains" are not columns
    # "funny" is in 3 of the 9 texts, "joke" in 2: the rarer term weighs more
    assert features[vocabulary["joke"]] > features[vocabulary["funny"]]
    assert not router.lexical_features("a funny joke", 0.0).any()
    assert not router.lexical_features("nothing known", 2.0).any()


def test_word_features_tell_apart_what_the_embedding_cannot(tmp_path: Path) -> None:
    # "pun" and "smell" are both outside the toy embedding's vocabulary: "funny pun" and
    # "funny smell" get the same vector. Only the word features can learn that a pun is a
    # joke and a smell is not.
    text = TOY.replace('"laugh funny"]', '"laugh funny", "funny pun", "laugh pun"]').replace(
        '"weather late"]', '"weather late", "funny smell", "a laugh smell"]'
    )
    with_words = text.replace("  alias_weight: 0.5\n", "  alias_weight: 0.5\n  lexical_weight: 2\n")
    cache = tmp_path / "cache"
    decided: dict[str, tuple[str | None, str | None]] = {}
    for content, name in ((text, "a.yaml"), (with_words, "b.yaml")):
        _fresh_process()
        router = ConceptRouter(
            load_concept_file(write(tmp_path, content, name)), WordEmbeddings(), cache
        )
        pun, smell = router.route("funny pun"), router.route("funny smell")
        decided[name] = (pun.concept, smell.concept)
        if name == "a.yaml":
            assert (pun.meaning, pun.none) == pytest.approx((smell.meaning, smell.none))
    assert decided["b.yaml"] == ("joke", None)
    assert decided["a.yaml"][0] == decided["a.yaml"][1]
    # the weight is part of what the kept classifier is named by
    assert len(list((cache / "routing").glob("classifier-*.npz"))) == 2


@pytest.mark.parametrize(
    ("text", "leads"),
    [("make me lauhg", True), ("please make me lauhg", True), ("I said make me lauhg", False)],
)
def test_a_misspelt_alias_leads_where_the_alias_would(
    toy: ConceptRouter, text: str, leads: bool
) -> None:
    alias, found_leads = toy.deciding_alias(text, fuzzy=True)
    assert alias is not None and alias.kind == "fuzzy" and found_leads is leads
    assert toy.deciding_alias(text) == (None, False)  # fuzzy off: no alias at all


def _evidence(
    alias_text: str | None, leads: bool, none: float = -1.0, **meaning: float
) -> Evidence:
    alias = AliasMatch(alias_text, alias_text, "exact", 1.0, 0, 1) if alias_text else None
    return Evidence(meaning, alias, leads, none)


PARAMS = RoutingParams(threshold=0.5)


@pytest.mark.parametrize(
    ("evidence", "concept", "candidate", "tier"),
    [
        # the most probable concept, when it beats none and reaches the threshold
        (_evidence(None, False, none=0.1, joke=0.7, define_term=0.2), "joke", "joke", "meaning"),
        (_evidence(None, False, none=0.1, joke=0.5, define_term=0.4), "joke", "joke", "meaning"),
        (_evidence(None, False, none=0.2, joke=0.49, define_term=0.31), None, "joke", "meaning"),
        (_evidence(None, False, none=0.6, joke=0.3), None, "joke", "meaning"),
        # none as probable as the concept: not routed, even above the threshold
        (_evidence(None, False, none=0.5, joke=0.5), None, "joke", "meaning"),
        # the alias is evidence the probabilities already weigh: it names the tier only
        (
            _evidence("joke", True, none=0.05, joke=0.15, define_term=0.8),
            "define_term",
            "define_term",
            "lead",
        ),
        (_evidence("joke", False, none=0.7, joke=0.3), None, "joke", "alias"),
        (_evidence(None, False), None, None, "meaning"),
    ],
)
def test_decide(evidence: Evidence, concept: str | None, candidate: str | None, tier: str) -> None:
    route = decide(evidence, PARAMS)
    assert (route.concept, route.candidate, route.tier) == (concept, candidate, tier)
    assert route.none == evidence.none  # reported, for the log
    assert route.alias is evidence.alias


def test_the_threshold_is_a_probability_the_best_concept_must_reach() -> None:
    evidence = _evidence(None, False, none=0.05, joke=0.55, define_term=0.4)
    assert decide(evidence, RoutingParams(threshold=0.5)).concept == "joke"
    assert decide(evidence, RoutingParams(threshold=0.6)).concept is None


def test_routing_by_meaning_end_to_end(toy: ConceptRouter) -> None:
    # no alias, close to the joke examples: routed by meaning
    route = toy.route("funny funny laugh")
    assert (route.concept, route.tier) == ("joke", "meaning")
    # no alias and far from everything: none
    assert toy.route("weather train late").concept is None
    # a leading alias whose meaning agrees
    assert toy.route("joke funny").concept == "joke"
    # a leading alias in another sense: the meaning is not there, vetoed
    route = toy.route("joke, weather train late late")
    assert (route.concept, route.candidate, route.tier) == (None, "joke", "lead")
    assert toy.route("").concept is None


def test_an_ordinary_message_near_the_no_concept_requests_does_not_route(
    tmp_path: Path,
) -> None:
    router = ConceptRouter(load_concept_file(write(tmp_path, TOY)), WordEmbeddings())
    # near the jokes and nowhere near the ordinary requests: routed
    assert router.route("funny laugh").concept == "joke"
    # as near the jokes, but nearer the ordinary requests: none wins
    route = router.route("funny weather train late")
    assert (route.concept, route.candidate, route.tier) == (None, "joke", "meaning")
    assert route.none > route.meaning


def test_the_examples_are_embedded_once_and_the_message_once_per_route(
    tmp_path: Path,
) -> None:
    model = WordEmbeddings()
    concepts = load_concept_file(write(tmp_path, TOY))
    first, second = ConceptRouter(concepts, model), ConceptRouter(concepts, model)
    first.route("funny")
    second.route("word")
    # the six examples and three ordinary requests, shared by both routers of the process
    assert model.documents == 9
    assert model.queries == 2
    second.route("mean", vector=model._vector("mean"))  # a vector given: nothing embedded
    assert model.queries == 2


def test_the_classifier_is_fitted_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted: list[int] = []
    real = routing.fit_classifier

    def counting(*args: Any, **kwargs: Any) -> routing.Classifier:
        fitted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(routing, "fit_classifier", counting)
    # An empty process memo: another test may have fitted the same toy file already.
    monkeypatch.setattr(routing, "_CLASSIFIERS", {})
    model = WordEmbeddings()
    concepts = load_concept_file(write(tmp_path, TOY))
    ConceptRouter(concepts, model).route("funny")
    ConceptRouter(concepts, model).route("word")
    ConceptRouter(concepts, model).evidence("mean")
    assert fitted == [1]


def test_without_model_examples_or_numbers_the_aliases_decide_alone(tmp_path: Path) -> None:
    concepts = load_concept_file(write(tmp_path, TOY))
    no_numbers = ConceptFile(concepts.concepts, concepts.no_concept, None)
    for router in (
        ConceptRouter(concepts, None),
        ConceptRouter(no_numbers, WordEmbeddings()),
        ConceptRouter.from_file(write(tmp_path, VALID, "plain.yaml"), WordEmbeddings()),
    ):
        assert not router.by_meaning
        route = router.route("tell me a joke about weather")
        assert (route.concept, route.tier) == ("joke", "aliases only")
        assert router.route("funny funny laugh").concept is None


def test_a_broken_embedding_model_falls_back_to_aliases_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(WordEmbeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise RuntimeError("no model files")

    router = ConceptRouter(load_concept_file(write(tmp_path, TOY)), Broken())
    caplog.set_level(logging.WARNING, logger="assistant.aliases")
    assert router.route("joke, weather").concept == "joke"  # the alias alone
    assert router.route("make me laugh").concept == "joke"
    assert not router.by_meaning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no model files" in warnings[0]


def test_the_decision_is_logged_without_the_message(
    toy: ConceptRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="assistant.aliases")
    toy.route("joke, weather train late late secretword")
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "not routed: weighed concept=joke tier=lead" in text
    # why: the probabilities and what the alias was worth to the classifier
    assert re.search(r"p=0\.\d+ none=0\.\d+ alias='joke' \([+-]\d+\.\d log-odds", text)
    assert "secretword" not in text


def test_calibration_separates_what_the_examples_separate(tmp_path: Path) -> None:
    router = ConceptRouter(load_concept_file(write(tmp_path, TOY)), WordEmbeddings())
    found = calibrate(router)
    assert found.total == 9  # six concept examples and three ordinary requests
    assert found.correct == found.total and not found.mistakes
    assert sum(total for total, _ in found.per_tier.values()) == found.total
    # the thresholds separate the toy examples: a joke without alias still routes by
    # meaning, ordinary requests do not
    params = found.params
    assert params.lead_in == frozenset({"please", "can", "you"})
    assert decide(router.evidence("laugh funny funny"), params).concept == "joke"
    assert decide(router.evidence("train weather"), params).concept is None


def test_cross_validation_scores_every_example_in_file_order(tmp_path: Path) -> None:
    router = ConceptRouter(load_concept_file(write(tmp_path, TOY)), WordEmbeddings())
    assert router.file.params is not None
    cases = cross_validated(router, router.file.params)
    assert [text for text, _, _ in cases] == [*router.texts, *router.file.no_concept]
    assert [want for _, want, _ in cases] == ["joke"] * 3 + ["define_term"] * 3 + [None] * 3
    for _, _, evidence in cases:  # a probability per concept, and none's: they sum to 1
        assert sum(evidence.meaning.values()) + evidence.none == pytest.approx(1.0)
    # the aliases are found as in a message: "joke joke funny" leads with one
    assert cases[0][2].alias is not None and cases[0][2].leads


def test_calibration_needs_two_examples_of_each_class(tmp_path: Path) -> None:
    text = TOY.replace('["joke joke funny", "funny laugh joke", "laugh funny"]', '["joke"]')
    router = ConceptRouter(load_concept_file(write(tmp_path, text)), WordEmbeddings())
    with pytest.raises(ValueError, match="two examples"):
        calibrate(router)


def test_calibration_needs_a_model(tmp_path: Path) -> None:
    router = ConceptRouter(load_concept_file(write(tmp_path, TOY)), None)
    with pytest.raises(ValueError, match="needs"):
        calibrate(router)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [j]\n    examples: [5]\n",
            "concept 'joke': example 1 must be a non-empty string, not 5",
        ),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [j]\n    examples: ['  ']\n",
            "concept 'joke': example 1",
        ),
        ("concepts:\n  joke:\n    prompt: p\n    aliases: [j]\nno_concept: x\n", "'no_concept'"),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [j]\nrouting: {threshold: 1}\n",
            "'routing'",
        ),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [j]\nrouting:\n  threshold: 0.3\n"
            "  regularisation: 1\n  alias_weight: 0.5\n  cutoff: 0\n",
            "'routing'.*unknown key 'cutoff'",
        ),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [j]\nrouting:\n  threshold: 0.3\n"
            "  regularisation: 0\n  alias_weight: 0.5\n",
            "'routing': 'regularisation'",
        ),
        (
            "concepts:\n  joke:\n    prompt: p\n    aliases: [j]\nrouting:\n  threshold: 1.5\n"
            "  regularisation: 1\n  alias_weight: 0.5\n",
            "'routing': 'threshold'",
        ),
    ],
)
def test_bad_examples_or_routing_numbers_are_named(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(ValueError, match=problem) as info:
        load_concept_file(path)
    assert str(path) in str(info.value)


def test_shipped_examples_are_many_distinct_and_none_is_a_test_case() -> None:
    import yaml

    shipped = load_concept_file()
    assert shipped.params is not None and shipped.params.lead_in
    seen: set[tuple[str, ...]] = set()
    for concept in shipped.concepts.values():
        assert len(concept.examples) >= 15, concept.name
        for example in concept.examples:
            assert tuple(normalise(example)) not in seen, example
            seen.add(tuple(normalise(example)))
    assert len(shipped.no_concept) >= 150
    for request in shipped.no_concept:
        assert tuple(normalise(request)) not in seen, request
        seen.add(tuple(normalise(request)))
    # the examples are what the router learns from; the corpus and the held-out
    # phrasings are what it is tested on: no message may be both
    corpus = yaml.safe_load(
        (PROMPTS_DIR.parent / "evals" / "corpora" / "routing.yaml").read_text(encoding="utf-8")
    )
    tested = [c["turns"][-1] for c in corpus["cases"]]
    tested += [text for text, _ in HELD_OUT]
    leaked = [text for text in tested if tuple(normalise(text)) in seen]
    assert not leaked, leaked


# --------------------------------------------------------------------------- query cache


def test_query_vectors_are_cached_per_text_and_the_model_loads_lazily() -> None:
    model = WordEmbeddings()
    loads: list[int] = []

    def load() -> Any:
        loads.append(1)
        return model

    cache = CachedQueryEmbeddings(load, size=2)
    assert loads == []  # nothing loaded until a vector is needed
    first = cache.embed_query("joke")
    assert cache.embed_query("joke") == first and model.queries == 1
    cache.embed_query("word")
    cache.embed_query("mean")  # "joke" is the least recently used: dropped
    cache.embed_query("joke")
    assert model.queries == 4 and (cache.hits, cache.misses) == (1, 4)
    cache.embed_documents(["joke", "joke"])
    cache.embed_documents(["joke"])
    assert model.documents == 3  # documents are never cached
    assert cache.model_name == model.model_name and loads == [1]


def _fresh_process() -> None:
    """Forget what this process fitted, as a new process would."""
    routing._CLASSIFIERS.clear()
    routing._EXAMPLE_VECTORS.clear()


def test_a_kept_classifier_spares_the_next_process_embedding_and_fitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    concepts = load_concept_file(write(tmp_path, TOY))
    embeddings = WordEmbeddings()
    first = ConceptRouter(concepts, embeddings, cache_dir=tmp_path / "cache")
    routed = first.route("funny laugh joke")
    kept = list((tmp_path / "cache" / "routing").glob("classifier-*.npz"))
    assert len(kept) == 1
    _fresh_process()
    embedded = embeddings.documents

    def no_fit(*args: object, **kwargs: object) -> routing.Classifier:
        raise AssertionError("fitted again")

    monkeypatch.setattr(routing, "fit_classifier", no_fit)
    second = ConceptRouter(concepts, embeddings, cache_dir=tmp_path / "cache")
    assert second.route("funny laugh joke") == routed
    assert embeddings.documents == embedded  # the examples were not embedded again


def test_a_changed_concept_file_or_model_fits_a_new_classifier(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    embeddings = WordEmbeddings()
    original = load_concept_file(write(tmp_path, TOY))
    changed = load_concept_file(
        write(tmp_path, TOY.replace('"mean word"]', '"mean word", "what word means"]'), "b.yaml")
    )
    for concepts, model in ((original, embeddings), (changed, embeddings), (original, None)):
        _fresh_process()
        ConceptRouter(concepts, model or WordEmbeddings(), cache).route("funny laugh joke")
    assert len(list((cache / "routing").glob("classifier-*.npz"))) == 3


@pytest.mark.parametrize("content", [b"", b"not a numpy file", b"PK\x03\x04broken zip"])
def test_an_unreadable_kept_classifier_is_refitted_and_replaced(
    tmp_path: Path, content: bytes
) -> None:
    concepts = load_concept_file(write(tmp_path, TOY))
    embeddings = WordEmbeddings()
    router = ConceptRouter(concepts, embeddings, cache_dir=tmp_path / "cache")
    expected = router.route("funny laugh joke")
    (kept,) = (tmp_path / "cache" / "routing").glob("classifier-*.npz")
    kept.write_bytes(content)
    _fresh_process()
    again = ConceptRouter(concepts, embeddings, cache_dir=tmp_path / "cache")
    assert again.route("funny laugh joke") == expected
    assert routing.Classifier.load(kept) is not None


def test_a_read_only_cache_costs_a_fit_not_a_failure(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "routing").write_text("a file where the directory should be")
    router = ConceptRouter(load_concept_file(write(tmp_path, TOY)), WordEmbeddings(), cache)
    assert router.route("funny laugh joke").concept == "joke"


# --- typos: fuzzy matching takes near matches with the shape of a typo only ------------


@pytest.mark.parametrize(
    ("words", "alias"),
    [
        ("proofraed", "proofread"),  # two letters swapped
        ("expalin like i'm five", "explain like i'm five"),
        ("explain like i'm fvie", "explain like i'm five"),
        ("walk me trough", "walk me through"),  # a letter dropped
        ("fix my grammer", "fix my grammar"),  # one replaced
        ("tel me a joke", "tell me a joke"),  # a double letter typed once
        ("quizz me", "quiz me"),  # or twice
        ("brainstrom", "brainstorm"),
        ("explian liek im fiv", "explain like i'm five"),  # a word cut short
    ],
)
def test_typos_have_the_shape_of_a_typo(words: str, alias: str) -> None:
    assert typo_of(normalise(words), normalise(alias))


@pytest.mark.parametrize(
    ("words", "alias"),
    [
        ("standing for", "stand for"),  # inflections
        ("translated", "translate"),
        ("i'm five years old", "like a five year old"),
        ("trivial", "trivia"),  # another word that extends the alias
        ("give me the list", "give me the gist"),  # another first letter: another word
        ("which is hotter", "which is better"),
        ("what does the fox", "what does the word"),
        ("fix my code", "fix my code editor"),  # not as many words
    ],
)
def test_other_words_are_no_typos(words: str, alias: str) -> None:
    assert not typo_of(normalise(words), normalise(alias))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sumarize this book: Dune", "summarize this book"),
        ("Can you proofraed this?", "proofread"),
        ("brainstrom names for a cafe", "brainstorm"),
        ("I'm standing for election, how do I write a speech?", None),
        ("This was translated from French", None),  # one-word inflections stay out
        ("Give me the list again", None),
        ("What does the fox say?", None),
        ("The debut album", None),  # one-word aliases under six letters: no fuzzy
    ],
)
def test_fuzzy_matching_finds_typos_only(
    matcher: AliasMatcher, text: str, expected: str | None
) -> None:
    found = matcher.match(text, fuzzy=True)
    assert (found.alias if found else None) == expected
    assert found is None or found.kind == "fuzzy"


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("Expalin like I'm five: DNS", "explain like i'm five: dns"),
        ("Please proofraed: Their going", "please proofread: their going"),
        ("ok, sumarize this book — Dune", "ok, summarize this book — dune"),
        ("Im sure: explian liek im five", "im sure: explain like i'm five"),
    ],
)
def test_a_typo_is_read_as_its_alias(matcher: AliasMatcher, text: str, read: str) -> None:
    match = next(m for m in matcher.candidates(text, fuzzy=True) if m.kind == "fuzzy")
    assert corrected(text, match) == read


def test_an_exact_alias_is_read_as_typed(matcher: AliasMatcher) -> None:
    match = matcher.match("ELI5: DNS")
    assert match is not None and corrected("ELI5: DNS", match) == "eli5: dns"


# ------------------------------------------------------------- what a command acts on


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("TLDR; the meeting is at 5", "; the meeting is at 5"),
        ("tl dr: where is it?", ": where is it?"),  # typed another way: found by position
        ("Please TL;DR this", " this"),
        ("tldr", ""),
        ("Sumarise: Der Zug fährt um 5.", ": der zug fährt um 5."),  # a typo, folded
    ],
)
def test_following_is_what_comes_after_the_alias(text: str, rest: str) -> None:
    match = AliasMatcher.from_file().match(text, fuzzy=True)
    assert match is not None and routing.following(text, match) == rest


def shipped_router() -> ConceptRouter:
    """The shipped concept file, routed by its aliases alone (no model)."""
    return ConceptRouter(load_concept_file(), None)


@pytest.mark.parametrize("message", SUMMARY_LOOK_ALIKES)
def test_a_summary_command_before_a_question_of_the_user_s_own_does_not_route(
    message: str,
) -> None:
    route = shipped_router().route(message)
    assert route.concept is None, route


@pytest.mark.parametrize("message", SUMMARY_REQUESTS)
def test_a_summary_command_with_text_to_summarise_routes(message: str) -> None:
    assert shipped_router().route(message).concept == "summarise"


@pytest.mark.parametrize(("message", "concept"), QUESTIONS_AS_OBJECTS)
def test_commands_that_act_on_a_question_route_with_one(message: str, concept: str) -> None:
    assert shipped_router().route(message).concept == concept


@pytest.mark.parametrize(("message", "concept"), ROUTED_ALONE)
def test_what_follows_a_turned_down_command_is_routed_alone(message: str, concept: str) -> None:
    route = shipped_router().route(message)
    assert route.concept == concept, route


def test_only_a_command_needs_an_object() -> None:
    # "summarise" is no command: leading a question, it asks for a summary of its topic
    route = shipped_router().route("Summarise: what were the causes of WW1?")
    assert route.concept == "summarise"


def test_a_turned_down_command_is_logged_without_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="assistant.aliases")
    shipped_router().route("TLDR; the meeting is at 5, where is secretword?")
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "not summarise: its command 'tldr' leads a question of its own" in text
    assert "secretword" not in text


COMMAND_OBJECT = (
    "concepts:\n  s:\n    prompt: p\n    aliases: [tldr]\n    commands: [tldr]\n"
    "    command_object:\n"
)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("      names: [this]\n", "concept 's': 'command_object'.*missing 'speaker'"),
        ("      speaker: []\n", "concept 's': 'command_object'"),
        ("      speaker: [i]\n      passage_words: 0\n", "'command_object'.*positive"),
        ("      speaker: [i]\n      nouns: [x]\n", "'command_object'.*unknown key"),
        ("      speaker: [me too]\n", "speaker word 'me too' is not one word"),
        ("      speaker: [i]\n      names: ['^?']\n", r"name '\^\?' has no words"),
    ],
)
def test_a_bad_command_object_is_named(tmp_path: Path, spec: str, problem: str) -> None:
    path = write(tmp_path, COMMAND_OBJECT + spec, "bad.yaml")
    with pytest.raises(ValueError, match=problem) as info:
        load_concept_file(path)
    assert str(path) in str(info.value)


def test_a_command_object_is_read_from_the_file(tmp_path: Path) -> None:
    spec = "      speaker: [I, Ich]\n      names: ['^this', The Following]\n"
    wanted = load_concepts(write(tmp_path, COMMAND_OBJECT + spec))["s"].command_object
    assert wanted == routing.CommandObject(
        frozenset({"i", "ich"}), (("the", "following"),), (("this",),), 40
    )
    assert load_concepts(write(tmp_path, VALID))["joke"].command_object is None


# A command below COMMAND_FLOOR routes only when its object is plainly there (the
# shipped file; the classifier's probabilities made up: all but impossible, 0.001).
@pytest.mark.parametrize(
    ("message", "routes"),
    [
        ("TL;DR?", True),  # nothing follows: what came before
        ("tldr", True),
        ("TL;DR of the thread above, who won the argument?", True),  # a text named
        ("give me the gist of the following: x", True),
        ("eli5 why is the sky blue?", True),  # a question, for a command that takes one
        ("Explain like I'm 5: how do magnets work?", True),
        ("eli5: Manning stats", True),  # set apart as an instruction
        ("reword - me and him is late.", True),
        ("proof read: Their going too the store.", True),
        ("Eli5 Manning stats", False),  # a name or a topic: the classifier decides
        ("Eli5 Manning stats?", False),
        ("eli5 manning, why did he retire?", False),  # the question does not follow it
        ("reword Their going too the store.", True),  # a sentence, for a text command
        ("Reword: x", True),
        ("reword Their going", False),  # no sentence
        ("Eli5 Manning retired in 2020.", False),  # a sentence is no object of eli5
        ("tl;dr I hate Mondays.", False),  # the user's own marker, no text named
        ("TLDR: long day", False),
        ("tl;dr: why is it late?", False),  # a question is no summary's object
        ("ELI5 is a subreddit, why?", False),  # the alias spoken of
    ],
)
def test_a_command_below_the_floor_routes_when_its_object_is_plainly_there(
    message: str, routes: bool
) -> None:
    router = shipped_router()
    alias, leads = router.deciding_alias(message)
    assert alias is not None and leads
    unlikely = {name: 0.001 for name in router.names}
    assert router._commands(message, routing.Evidence(unlikely, alias, leads, 0.99)) is routes
    likely = {**unlikely, alias.concept: routing.COMMAND_FLOOR}
    spoken_of = message.startswith("ELI5 is")
    assert router._commands(message, routing.Evidence(likely, alias, leads, 0.9)) is not spoken_of


def test_command_sentence_is_read_from_the_file(tmp_path: Path) -> None:
    text = "concepts:\n  s:\n    prompt: p\n    aliases: [x]\n    command_sentence: true\n"
    assert load_concepts(write(tmp_path, text))["s"].command_sentence
    assert not load_concepts(write(tmp_path, VALID))["joke"].command_sentence
    assert load_concept_file().concepts["proofread"].command_sentence


def test_question_words_are_read_from_the_routing_section(tmp_path: Path) -> None:
    text = VALID + "routing:\n  threshold: 0.5\n  regularisation: 1\n  alias_weight: 0\n"
    text += '  question_words: [Why, "Where\'s"]\n'
    assert load_concept_file(write(tmp_path, text)).question_words == {"why", "wheres"}
    assert load_concept_file(write(tmp_path, VALID)).question_words == frozenset()
    assert {"why", "how", "où", "где"} <= load_concept_file().question_words


# A leading command decides against the classifier (newcomer probe, 2026-11-30): the
# command rule applied only when the classifier chose no concept, so 'reword "hello there
# my friend"' went to translate (0.95). The classifier's probabilities are made up here
# (the shipped file, no model): the rule, not the model, is under test.
def _routed(message: str, meaning: dict[str, float], none: float = 0.05) -> str | None:
    router = shipped_router()
    probabilities = {name: 0.001 for name in router.names} | meaning
    router._meaning = lambda *_args: (probabilities, none)  # type: ignore[method-assign]
    return router.route(message).concept


@pytest.mark.parametrize(
    ("message", "meaning", "concept"),
    [
        # the command with its object plainly there decides
        ('reword "hello there my friend"', {"translate": 0.95}, "proofread"),
        ("Reword: 'We regret to inform you.'", {"translate": 0.75}, "proofread"),
        ("rephrase - the meeting got moved", {"summarise": 0.6}, "proofread"),
        ("reword Their going too the store.", {"translate": 0.9}, "proofread"),
        ("eli5 why is the sky blue?", {"define_term": 0.8}, "explain_simply"),
        ("TL;DR of the thread above", {"quiz": 0.7}, "summarise"),
        # "summarise" is a command: below the threshold it still routes
        ("summarise: the cat sat on the mat all day", {"summarise": 0.28}, "summarise"),
        ("summarize: the cat sat on the mat all day", {"summarise": 0.22}, "summarise"),
        # asked for as a thing, after command_lead_in words
        ("give me a tl;dr of the meeting", {"proofread": 0.34}, "summarise"),
        ("give me a tl;dr of the French revolution", {"quiz": 0.53}, "summarise"),
        ("can I get a quick ELI5: how do magnets work?", {"define_term": 0.6}, "explain_simply"),
        # the classifier's choice stands: no plain object, a narrower concept, no command
        ("Eli5 Manning stats", {"debug_code": 0.6}, "debug_code"),
        ("tl;dr I hate Mondays.", {"joke": 0.6}, "joke"),
        (
            "Give me the gist of the novel Brave New World",
            {"summarise_book": 0.99},
            "summarise_book",
        ),
        ("Summarize: Brave New World", {"summarise_book": 0.9}, "summarise_book"),
        ("Reword this in Spanish: hello friend", {"translate": 0.96}, "translate"),
        ("Do ELI5 videos help kids learn?", {"pros_cons": 0.6}, "pros_cons"),
        ("I told him a tl;dr of the plot", {"summarise_book": 0.6}, "summarise_book"),
        # and the classifier's choice of the command's own concept, as before
        ('reword "hello"', {"proofread": 0.9}, "proofread"),
    ],
)
def test_a_leading_command_with_its_object_decides_against_the_classifier(
    message: str, meaning: dict[str, float], concept: str
) -> None:
    assert _routed(message, meaning) == concept


@pytest.mark.parametrize(
    ("message", "command"),
    [
        ("give me a tl;dr of the meeting", "tl;dr"),
        ("Can I get a quick TLDR of this?", "tldr"),
        ("write a short eli5 of how vaccines work", "eli5"),
        ("I need a brief tl;dr: the report", "tl;dr"),
        ("so, give us a summary. then summarise: x", "summarise"),
        ("Do ELI5 videos help?", None),  # "do" asks no command
        ("I told him a tl;dr of the plot", None),
        ("give me a fun fact", None),  # not a command
    ],
)
def test_a_command_asked_for_as_a_thing_leads(message: str, command: str | None) -> None:
    router = shipped_router()
    alias, leads = router.deciding_alias(message)
    assert alias is not None
    found = router._command_leads(message, alias, leads)
    assert (found.alias if found else None) == command


def test_command_lead_in_is_read_from_the_routing_section(tmp_path: Path) -> None:
    text = VALID + "routing:\n  threshold: 0.5\n  regularisation: 1\n  alias_weight: 0\n"
    text += "  command_lead_in: [Give, Me, A]\n"
    assert load_concept_file(write(tmp_path, text)).command_lead_in == {"give", "me", "a"}
    assert load_concept_file(write(tmp_path, VALID)).command_lead_in == frozenset()
    assert {"give", "me", "a"} <= load_concept_file().command_lead_in


def test_a_narrower_concept_is_one_whose_alias_extends_another_s() -> None:
    narrower = routing.narrower_concepts(load_concept_file().concepts)
    assert narrower["summarise"] == {"summarise_book"}
    assert "analogy" in narrower["compare"]
    assert "summarise_book" not in narrower  # nothing extends its aliases
    assert all(name not in names for name, names in narrower.items())
