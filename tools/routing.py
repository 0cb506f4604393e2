"""Alias detection: map phrases in a user message to specialised prompts.

A *concept* (``explain_simply``, ``summarise_book``, ...) has a prompt that is added to the
base system prompt for one turn, and a list of *aliases*: phrases that select it. Both live
in ``prompts/concepts.yaml``; no prompt text lives in Python code.

Matching works on normalised tokens (see :func:`normalise`): an alias matches only as a
contiguous token sequence, never inside a word ("define" does not match "undefined").
When several aliases match, the most specific one wins:

1. an exact match always beats a fuzzy one (fuzzy only rescues typos);
2. more tokens in the alias beat fewer ("summarise this book" beats "summarise");
3. an earlier position in the message beats a later one;
4. a higher fuzzy score beats a lower one; the concept name breaks any remaining tie.

Fuzzy matching (off by default) scores each multi-word alias against every window of as many
tokens and keeps scores >= the cutoff, to catch typos such as "sumarize this book". The score
is rapidfuzz's normalised Indel similarity (``fuzz.ratio`` / 100): twice the longest common
subsequence of the two strings over their total length, 0..1.

Every decision is logged on the ``assistant.aliases`` logger: each candidate at DEBUG, the
winner (and why it won) at INFO. Message text is never logged, only token counts.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from rapidfuzz import process
from rapidfuzz.distance import Indel

from tools.text import Location, describe_validation_error, fold, parse_yaml

__all__ = [
    "DEFAULT_CUTOFF",
    "FUZZY_EDGE_TOKENS",
    "FUZZY_MIN_TOKENS",
    "PROMPTS_DIR",
    "AliasMatch",
    "AliasMatcher",
    "Concept",
    "load_concepts",
    "load_system_prompt",
    "normalise",
]

logger = logging.getLogger("assistant.aliases")

PROMPTS_DIR: Path = Path(__file__).resolve().parents[1] / "prompts"

DEFAULT_CUTOFF = 0.85
# A margin this low never vetoes (cosine differences lie in -2..2): none is not weighed.
NO_MARGIN = -2.0
# How many of the nearest ordinary requests (no_concept) the "none" score averages: one
# would make it the luck of a single near-duplicate, many would blur it into the topic-free
# average (measured on the file's own examples, left out in turn: 5 beat 1 and 3).
NONE_NEIGHBOURS = 5
# Fuzzy matching skips one-word aliases: a single edited word is too often another real
# word ("translated" vs "translate", "debugs" vs "debug") rather than a typo.
FUZZY_MIN_TOKENS = 2
# On long messages (pasted text), fuzzy matching looks only at this many tokens at each end,
# where instructions sit; it bounds the cost (a 4,900-token paste: ~6 ms, not ~70 ms with
# every window). Exact matching always scans the whole message.
FUZZY_EDGE_TOKENS = 40

# A token is a run of letters/digits, possibly joined by apostrophes ("i'm", "layman's").
# Hyphens, underscores and all other punctuation separate tokens.
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# Applied after apostrophes are dropped, so "I'm", "Im" and "I am" give the same tokens.
_EXPANSIONS: dict[str, tuple[str, ...]] = {
    "im": ("i", "am"),
    "whats": ("what", "is"),
}


@dataclass(frozen=True)
class Concept:
    """A specialised prompt and the phrases that select it.

    Attributes:
        name: Stable snake_case identifier, e.g. ``"summarise_book"``.
        prompt: Instruction added to the base system prompt for the turn.
        aliases: Phrases (as written in the YAML file) that select the concept.
        examples: Requests for the concept as people word them, for routing by meaning.

    """

    name: str
    prompt: str
    aliases: tuple[str, ...]
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class AliasMatch:
    """One alias found in a message.

    Attributes:
        concept: Name of the concept the alias belongs to.
        alias: The alias as written in the YAML file.
        kind: ``"exact"`` for a token-for-token match, ``"fuzzy"`` for a typo-tolerant one.
        score: 1.0 for exact matches, the Indel similarity (0..1) for fuzzy ones.
        position: Index of the first matched token in ``normalise(message)``.
        length: Number of tokens in the (normalised) alias.

    """

    concept: str
    alias: str
    kind: Literal["exact", "fuzzy"]
    score: float
    position: int
    length: int


@dataclass(frozen=True)
class _Entry:
    """An alias prepared for matching (built once, at construction)."""

    concept: str
    alias: str
    tokens: tuple[str, ...]
    joined: str  # tokens joined by spaces: what fuzzy matching compares


def normalise(text: str) -> list[str]:
    """Split text into normalised tokens for alias matching.

    The text is folded by :func:`tools.text.fold` (straight quotes, NFKC, case folded);
    hyphens and other punctuation split words, apostrophes inside words are dropped
    ("layman's" -> "laymans"), and "i'm"/"im" expand to "i am" ("what's" to "what is").

    Args:
        text: Any text, e.g. a user message or an alias.

    Returns:
        The tokens, in order; empty if the text has no letters or digits.

    """
    tokens: list[str] = []
    for raw in _TOKEN_RE.findall(fold(text)):
        token = raw.replace("'", "")
        tokens.extend(_EXPANSIONS.get(token, (token,)))
    return tokens


# --- the concept file ------------------------------------------------------------------


_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _ConceptSpec(BaseModel):
    """One concept as written in ``concepts.yaml``."""

    # strict: a number is no prompt; extra="forbid": a misspelt key is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt: _Text
    aliases: Annotated[
        list[Annotated[str, StringConstraints(strip_whitespace=True)]], Field(min_length=1)
    ]
    examples: list[_Text] = Field(default_factory=list)


class _RoutingSpec(BaseModel):
    """The ``routing`` section: how meaning and aliases are weighed (calibrated numbers)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    lead_threshold: Annotated[float, Field(ge=-1, le=1)]
    alias_threshold: Annotated[float, Field(ge=-1, le=1)]
    threshold: Annotated[float, Field(ge=-1, le=1)]
    lead_margin: Annotated[float, Field(ge=-2, le=2)] = NO_MARGIN
    alias_margin: Annotated[float, Field(ge=-2, le=2)] = NO_MARGIN
    margin: Annotated[float, Field(ge=-2, le=2)] = NO_MARGIN
    lead_in: list[_Text] = Field(default_factory=list)


class _ConceptFile(BaseModel):
    """The whole of ``concepts.yaml``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    concepts: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")], _ConceptSpec],
        Field(min_length=1),
    ]
    no_concept: list[_Text] = Field(default_factory=list)
    routing: _RoutingSpec | None = None


def _where(location: Location) -> tuple[str, str]:
    """Name an entry of the concept file and say what it must be (for error messages)."""
    match location:
        case ("concepts",):
            return "'concepts'", "a non-empty mapping of name -> {prompt, aliases}"
        case ("concepts", name):
            return f"concept {name!r}", "a mapping with 'prompt' and 'aliases'"
        case ("concepts", name, "[key]"):
            return f"concept name {name!r}", "snake_case (a-z, 0-9, _)"
        case ("concepts", name, "prompt"):
            return f"concept {name!r}: 'prompt'", "a non-empty string"
        case ("concepts", name, "aliases"):
            return f"concept {name!r}: 'aliases'", "a non-empty list of strings"
        case ("concepts", name, "aliases", int(index)):
            return f"concept {name!r}: alias {index + 1}", "a string"
        case ("concepts", name, "examples"):
            return f"concept {name!r}: 'examples'", "a list of requests (strings)"
        case ("concepts", name, "examples", int(index)):
            return f"concept {name!r}: example {index + 1}", "a non-empty string"
        case ("no_concept", *_):
            return "'no_concept'", "a list of ordinary requests (non-empty strings)"
        case ("routing", *rest):
            field = f": {rest[0]!r}" if rest else ""
            return f"'routing'{field}", "thresholds and margins (numbers), lead_in (words)"
    return "the file", "a mapping with a top-level 'concepts' key"


@dataclass(frozen=True)
class RoutingParams:
    """How the router weighs meaning and aliases (``routing`` in ``concepts.yaml``).

    Meaning is the cosine similarity of the message to a concept's centroid (the
    normalised mean of its examples' vectors); *none* is how close the message is to the
    ordinary requests (``no_concept``): the mean similarity of its :data:`NONE_NEIGHBOURS`
    nearest ones. A concept is chosen when its meaning reaches the rule's threshold and
    exceeds none by at least the rule's margin. See :class:`ConceptRouter`.

    Attributes:
        lead_threshold: Meaning a concept needs when one of its aliases leads a request
            (the first words of a sentence or clause, after ``lead_in`` words).
        alias_threshold: Meaning a concept needs when its alias sits elsewhere (or is a
            fuzzy match).
        threshold: Meaning a concept needs when no alias was found.
        lead_in: Words a request may start with before its alias still leads.
        lead_margin: How far meaning must exceed none when an alias leads.
        alias_margin: How far meaning must exceed none when the alias sits elsewhere.
        margin: How far meaning must exceed none when no alias was found.
    """

    lead_threshold: float
    alias_threshold: float
    threshold: float
    lead_in: frozenset[str] = frozenset()
    lead_margin: float = NO_MARGIN
    alias_margin: float = NO_MARGIN
    margin: float = NO_MARGIN


@dataclass(frozen=True)
class ConceptFile:
    """Everything ``concepts.yaml`` holds.

    Attributes:
        concepts: Concepts by name, in file order.
        no_concept: Ordinary requests that must not route anywhere (what the routing
            numbers are calibrated against).
        params: The calibrated routing numbers; None if the file has none (aliases only).
    """

    concepts: dict[str, Concept]
    no_concept: tuple[str, ...] = ()
    params: RoutingParams | None = None


def _parse_file(data: object, source: str) -> ConceptFile:
    """Validate the parsed YAML document and turn it into concepts and routing data.

    Raises:
        ValueError: Naming ``source``, the concept and the field.

    """
    try:
        spec = _ConceptFile.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{source}: {describe_validation_error(exc, _where)}") from None
    concepts = {
        name: Concept(
            name=name,
            prompt=body.prompt,
            aliases=tuple(body.aliases),
            examples=tuple(body.examples),
        )
        for name, body in spec.concepts.items()
    }
    _build_entries(concepts, source)  # alias-level checks (empty, duplicates)
    params = None
    if spec.routing is not None:
        cfg = spec.routing
        lead_in = frozenset(token for word in cfg.lead_in for token in normalise(word))
        params = RoutingParams(
            cfg.lead_threshold,
            cfg.alias_threshold,
            cfg.threshold,
            lead_in,
            cfg.lead_margin,
            cfg.alias_margin,
            cfg.margin,
        )
    return ConceptFile(concepts, tuple(spec.no_concept), params)


def _parse_concepts(data: object, source: str) -> dict[str, Concept]:
    return _parse_file(data, source).concepts


def _build_entries(concepts: Mapping[str, Concept], source: str) -> list[_Entry]:
    """Normalise every alias, rejecting empty ones and duplicates.

    Two aliases are duplicates when they normalise to the same tokens ("step-by-step" and
    "step by step"), within one concept or across two.

    Raises:
        ValueError: Naming ``source`` and the offending alias(es).

    """
    entries: list[_Entry] = []
    owner: dict[tuple[str, ...], _Entry] = {}
    for key, concept in concepts.items():
        if key != concept.name:
            raise ValueError(f"{source}: key {key!r} holds concept named {concept.name!r}")
        if not concept.aliases:
            raise ValueError(f"{source}: concept {concept.name!r} has an empty alias list")
        for alias in concept.aliases:
            if not isinstance(alias, str):
                raise ValueError(
                    f"{source}: concept {concept.name!r} has a non-string alias {alias!r}"
                )
            tokens = tuple(normalise(alias))
            if not tokens:
                raise ValueError(
                    f"{source}: alias {alias!r} of concept {concept.name!r} has no words"
                )
            previous = owner.get(tokens)
            if previous is not None:
                raise ValueError(
                    f"{source}: duplicate alias {alias!r} in concept {concept.name!r} "
                    f"(same as {previous.alias!r} in concept {previous.concept!r})"
                )
            entry = _Entry(concept.name, alias, tokens, " ".join(tokens))
            owner[tokens] = entry
            entries.append(entry)
    return entries


def load_concept_file(path: Path | None = None) -> ConceptFile:
    """Load and validate the concept file: concepts, ordinary requests, routing numbers.

    Args:
        path: YAML file to read; defaults to ``PROMPTS_DIR / "concepts.yaml"``.

    Returns:
        The file's contents.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not valid YAML (a key given twice included) or breaks
            the schema: a missing prompt, an empty alias list, a non-string alias or
            example, an unknown key, or the same alias twice. The message names the file,
            the concept and the field.

    """
    path = PROMPTS_DIR / "concepts.yaml" if path is None else path
    text = path.read_text(encoding="utf-8")
    try:
        data = parse_yaml(text)  # duplicate keys are errors: a concept given twice
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    return _parse_file(data, str(path))


def load_concepts(path: Path | None = None) -> dict[str, Concept]:
    """Load and validate the concept file (see :func:`load_concept_file`).

    Args:
        path: YAML file to read; defaults to ``PROMPTS_DIR / "concepts.yaml"``.

    Returns:
        Concepts by name, in file order.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not valid YAML or breaks the schema.

    """
    return load_concept_file(path).concepts


def load_system_prompt(path: Path | None = None) -> str:
    """Load the base system prompt.

    Args:
        path: Markdown file to read; defaults to ``PROMPTS_DIR / "system.md"``.

    Returns:
        The prompt, stripped of surrounding whitespace.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is empty or only whitespace.

    """
    path = PROMPTS_DIR / "system.md" if path is None else path
    prompt = path.read_text(encoding="utf-8").strip()
    if not prompt:
        raise ValueError(f"{path}: system prompt is empty")
    return prompt


def _check_cutoff(cutoff: float) -> None:
    """Reject a fuzzy cutoff outside 0..1 (NaN included)."""
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | float) or not 0 <= cutoff <= 1:
        raise ValueError(f"cutoff must be a number between 0 and 1, got {cutoff!r}")


def _window_starts(count: int, length: int) -> Iterable[int]:
    """Start positions of the token windows fuzzy matching scores.

    All of them for a short message; for a long one, only windows lying within the first or
    the last ``FUZZY_EDGE_TOKENS`` tokens.
    """
    last = count - length  # last possible start
    if count <= 2 * FUZZY_EDGE_TOKENS:
        return range(last + 1)
    head = range(FUZZY_EDGE_TOKENS - length + 1)
    tail = range(count - FUZZY_EDGE_TOKENS, last + 1)
    return itertools.chain(head, tail)


def _rank_key(match: AliasMatch) -> tuple[int, int, int, float, str, str]:
    """Sort key, best first: exact, then longer, then earlier, then higher score."""
    return (
        0 if match.kind == "exact" else 1,
        -match.length,
        match.position,
        -match.score,
        match.concept,
        match.alias,
    )


def _why(winner: AliasMatch, other: AliasMatch) -> str:
    """Explain, for the log, which ranking rule put ``winner`` ahead of ``other``."""
    if winner.kind != other.kind:
        return f"{winner.kind} beats {other.kind}"
    if winner.length != other.length:
        return f"{winner.length} tokens beats {other.length}"
    if winner.position != other.position:
        return f"position {winner.position} beats {other.position}"
    if winner.score != other.score:
        return f"score {winner.score:.3f} beats {other.score:.3f}"
    return "tie broken by concept name"


class AliasMatcher:
    """Find the concept a user message asks for.

    The token index is built once here; matching a message is then a dictionary lookup per
    token (exact) plus, when asked, one rapidfuzz scan of the aliases per token window (fuzzy).
    The matcher holds no mutable state after construction, so it is safe to share.

    Example:
        >>> matcher = AliasMatcher.from_file()
        >>> matcher.match("Summarise this book: Dune").concept
        'summarise_book'

    """

    def __init__(self, concepts: Mapping[str, Concept]) -> None:
        """Index the aliases of ``concepts``.

        Args:
            concepts: Concepts by name, e.g. from :func:`load_concepts`.

        Raises:
            ValueError: If an alias is empty after normalisation or appears twice.

        """
        entries = _build_entries(concepts, "concepts")
        self._concepts: dict[str, Concept] = dict(concepts)
        by_first: dict[str, list[_Entry]] = {}
        for entry in entries:
            by_first.setdefault(entry.tokens[0], []).append(entry)
        self._by_first: dict[str, tuple[_Entry, ...]] = {
            token: tuple(group) for token, group in by_first.items()
        }
        by_length: dict[int, list[_Entry]] = {}
        for entry in entries:
            if len(entry.tokens) >= FUZZY_MIN_TOKENS:
                by_length.setdefault(len(entry.tokens), []).append(entry)
        # Per token count (ascending): the entries, and their strings for rapidfuzz.
        self._fuzzy_by_length: dict[int, tuple[tuple[_Entry, ...], tuple[str, ...]]] = {
            length: (tuple(group), tuple(entry.joined for entry in group))
            for length, group in sorted(by_length.items())
        }
        self._alias_count = len(entries)

    @classmethod
    def from_file(cls, path: Path | None = None) -> AliasMatcher:
        """Build a matcher from a concept file.

        Args:
            path: YAML file; defaults to ``PROMPTS_DIR / "concepts.yaml"``.

        Returns:
            A matcher over the file's concepts.

        """
        return cls(load_concepts(path))

    @property
    def alias_count(self) -> int:
        """Number of aliases across all concepts."""
        return self._alias_count

    def concept(self, name: str) -> Concept:
        """Return the concept called ``name``.

        Raises:
            KeyError: If there is no such concept; the message lists the known ones.

        """
        try:
            return self._concepts[name]
        except KeyError:
            known = ", ".join(sorted(self._concepts))
            raise KeyError(f"unknown concept {name!r}; known concepts: {known}") from None

    def candidates(
        self, text: str, *, fuzzy: bool = False, cutoff: float = DEFAULT_CUTOFF
    ) -> list[AliasMatch]:
        """Return every alias found in ``text``, best first.

        Args:
            text: The user message.
            fuzzy: Also look for near matches of multi-word aliases (typos).
            cutoff: Lowest similarity (0..1) a fuzzy match needs; checked even when
                ``fuzzy`` is off so a bad setting fails early.

        Returns:
            All matches, ordered by the ranking rules of this module (best first).

        Raises:
            ValueError: If ``cutoff`` is outside 0..1.

        """
        _check_cutoff(cutoff)
        return self._ranked(tuple(normalise(text)), fuzzy, cutoff)

    def match(
        self, text: str, *, fuzzy: bool = False, cutoff: float = DEFAULT_CUTOFF
    ) -> AliasMatch | None:
        """Return the best alias found in ``text``, or None, logging the decision.

        Args:
            text: The user message.
            fuzzy: Also look for near matches of multi-word aliases (typos).
            cutoff: Lowest similarity (0..1) a fuzzy match needs.

        Returns:
            The winning match, or None if no alias matched.

        Raises:
            ValueError: If ``cutoff`` is outside 0..1.

        """
        _check_cutoff(cutoff)
        tokens = tuple(normalise(text))
        ranked = self._ranked(tokens, fuzzy, cutoff)
        if logger.isEnabledFor(logging.DEBUG):
            for found in ranked:
                logger.debug(
                    "candidate concept=%s alias=%r kind=%s score=%.3f position=%d length=%d",
                    found.concept,
                    found.alias,
                    found.kind,
                    found.score,
                    found.position,
                    found.length,
                )
        if not ranked:
            logger.debug("no alias matched (%d tokens, fuzzy=%s)", len(tokens), fuzzy)
            return None
        winner = ranked[0]
        rival = next((m for m in ranked[1:] if m.concept != winner.concept), None)
        if rival is None:
            reason = f"no competing concept ({len(ranked)} candidate(s))"
        else:
            reason = f"{_why(winner, rival)} (vs {rival.concept} via {rival.alias!r})"
        logger.info(
            "matched concept=%s alias=%r kind=%s score=%.3f position=%d length=%d: %s",
            winner.concept,
            winner.alias,
            winner.kind,
            winner.score,
            winner.position,
            winner.length,
            reason,
        )
        return winner

    def _ranked(self, tokens: tuple[str, ...], fuzzy: bool, cutoff: float) -> list[AliasMatch]:
        """Collect exact (and optionally fuzzy) matches and sort them best first."""
        found = self._exact(tokens)
        if fuzzy:
            exact_spans = {(m.position, m.length) for m in found}
            found.extend(self._fuzzy(tokens, cutoff, exact_spans))
        found.sort(key=_rank_key)
        return found

    def _exact(self, tokens: tuple[str, ...]) -> list[AliasMatch]:
        """Find aliases whose tokens appear contiguously in ``tokens``."""
        found: list[AliasMatch] = []
        for position, token in enumerate(tokens):
            for entry in self._by_first.get(token, ()):
                length = len(entry.tokens)
                if tokens[position : position + length] == entry.tokens:
                    found.append(
                        AliasMatch(entry.concept, entry.alias, "exact", 1.0, position, length)
                    )
        return found

    def _fuzzy(
        self, tokens: tuple[str, ...], cutoff: float, exact_spans: set[tuple[int, int]]
    ) -> list[AliasMatch]:
        """Compare each multi-word alias with every token window of the same length.

        The score is ``Indel.normalized_similarity(window, alias)``; rapidfuzz skips pairs
        that cannot reach the cutoff. Spans already matched exactly are skipped: there the
        exact match is the truth, and a fuzzy reading of the same words would only add noise.
        """
        found: list[AliasMatch] = []
        # rapidfuzz's own cutoff test is a float comparison that drops a pair whose score
        # lies within ~1e-9 above the cutoff; loosened, it only prefilters, and the exact
        # score below (a ratio of integers) decides.
        loose = max(0.0, cutoff - 1e-3)
        for length, (entries, choices) in self._fuzzy_by_length.items():
            if length > len(tokens):
                break  # token counts are sorted
            for position in _window_starts(len(tokens), length):
                if (position, length) in exact_spans:
                    continue
                window = " ".join(tokens[position : position + length])
                hits = process.extract(
                    window,
                    choices,
                    scorer=Indel.normalized_similarity,
                    score_cutoff=loose,
                    limit=None,  # every alias above the cutoff, not the default best 5
                )
                for _, _, index in hits:
                    entry = entries[index]
                    # Indel.similarity is 2 * LCS, so this is the similarity, exactly.
                    score = Indel.similarity(window, entry.joined) / (
                        len(window) + len(entry.joined)
                    )
                    if score >= cutoff:
                        found.append(
                            AliasMatch(entry.concept, entry.alias, "fuzzy", score, position, length)
                        )
        return found


# --- routing by meaning -----------------------------------------------------------------
#
# Aliases alone miss requests worded another way ("what's the storyline of Dune") and take
# a word used in another sense for a request ("define a function in Python", "VS Code").
# The router also reads the message's meaning (the idea of aurelio-labs' semantic-router:
# example utterances per route, compared by embedding, a threshold for "none"): each
# concept's examples in concepts.yaml are embedded with the shared all-MiniLM-L6-v2, and
# the message's *meaning score* for a concept is its cosine similarity to the concept's
# centroid (the normalised mean of its example vectors; a centroid weighs what the
# examples share, the request, over the topic any one of them is about).
#
# "No concept" competes as a route of its own: the *none score* is the mean similarity of
# the message to its NONE_NEIGHBOURS nearest ordinary requests (no_concept in the file:
# questions of fact, talk about the conversation itself, "tell me about X", statements,
# thanks). Ordinary chat is unlike the concepts' examples in its own way (a kNN score,
# not a centroid: ordinary requests share no one form), and a threshold alone cannot see
# that: "Tell me something about topic 27" sits at 0.40-0.43 from summarise_book's
# centroid, above any workable threshold, but nearer still to "Tell me something about
# Antarctica".
#
# The aliases then say which concept is asked for and the meaning whether it really is:
#   1. an alias leads a request ("Can you define ...", "Tell me a joke"): its concept, if
#      the meaning score reaches lead_threshold and beats none by lead_margin;
#   2. an alias sits elsewhere ("This traffic is no joke, ..."), or only fuzzily: its
#      concept, if the meaning score reaches alias_threshold and beats none by
#      alias_margin;
#   3. no alias: the concept with the best meaning score, if it reaches threshold and
#      beats none by margin.
# When aliases of several concepts are found, a leading one wins, then the most specific
# (AliasMatcher's ranking). A vetoed alias routes nowhere: the message is taken as an
# ordinary request. The thresholds and margins are calibrated on the examples and on
# ordinary requests that must not route (no_concept), each left out in turn (calibrate()).

_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]+")


def lead_positions(text: str, lead_in: frozenset[str] = frozenset()) -> frozenset[int]:
    """Token positions (in ``normalise(text)``) at which an alias leads a request.

    Each sentence or clause (split at ``. ! ? ; : ,`` and line breaks) starts a request;
    an alias leads it when only lead-in words ("please", "can", "you", ...) come before
    it in its clause.

    Args:
        text: The user message.
        lead_in: Normalised lead-in tokens.

    Returns:
        The positions; empty for a message without tokens.
    """
    positions: set[int] = set()
    offset = 0
    for clause in _CLAUSE_BREAK.split(fold(text)):
        tokens = normalise(clause)
        for index, token in enumerate(tokens):
            positions.add(offset + index)
            if token not in lead_in:
                break
        offset += len(tokens)
    return frozenset(positions)


@dataclass(frozen=True)
class Evidence:
    """What the router found in one message.

    Attributes:
        meaning: Per concept, the cosine similarity of the message to its centroid (empty
            when routing by meaning is off or unavailable).
        alias: The alias that decides which concept is weighed (a leading one first, then
            the most specific), or None.
        leads: Whether ``alias`` leads a request.
        none: The none score: mean cosine similarity of the message to its
            :data:`NONE_NEIGHBOURS` nearest ordinary requests (-1.0 without any).
    """

    meaning: Mapping[str, float]
    alias: AliasMatch | None
    leads: bool
    none: float = -1.0


Tier = Literal["lead", "alias", "meaning", "aliases only"]


@dataclass(frozen=True)
class Route:
    """The router's decision for one message.

    Attributes:
        concept: The concept chosen, or None.
        candidate: The concept that was weighed (chosen or not); None without any.
        meaning: Its meaning score (0.0 when routing by aliases only).
        none: The message's none score (see :class:`Evidence`; -1.0 by aliases only).
        alias: The alias behind ``candidate``, if any.
        tier: Which rule decided: ``lead``/``alias`` (an alias, checked by meaning),
            ``meaning`` (no alias), or ``aliases only`` (no examples, routing numbers or
            embedding model: the alias decides alone, as :class:`AliasMatcher` does).
    """

    concept: str | None
    candidate: str | None
    meaning: float
    alias: AliasMatch | None
    tier: Tier
    none: float = -1.0


class EmbeddingFunction(Protocol):
    """What the router needs of an embedding model (a LangChain ``Embeddings`` fits)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Vectors for many texts."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The vector of one text."""
        ...


# Example vectors are the same for every router of a process over the same texts and
# model: computed once (a graph per eval case or per test would otherwise redo them).
_EXAMPLE_VECTORS: dict[tuple[str, str], Any] = {}
_EXAMPLE_LOCK = threading.Lock()


def _model_key(embeddings: EmbeddingFunction) -> str:
    return str(getattr(embeddings, "model_name", "") or type(embeddings).__qualname__)


def embed_examples(embeddings: EmbeddingFunction, texts: Sequence[str]) -> Any:
    """The normalised vectors of ``texts`` as an ``(n, d)`` float32 array, memoised.

    Raises:
        Whatever the embedding model raises (e.g. ``EmbeddingModelError``).
    """
    import numpy as np

    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    key = (_model_key(embeddings), digest)
    with _EXAMPLE_LOCK:
        found = _EXAMPLE_VECTORS.get(key)
    if found is not None:
        return found
    vectors = np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    vectors.setflags(write=False)
    with _EXAMPLE_LOCK:
        _EXAMPLE_VECTORS[key] = vectors
    return vectors


def _normalised(vectors: Any) -> Any:
    import numpy as np

    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class ConceptRouter:
    """Route a message to a concept by its aliases and its meaning (see the section comment).

    Example vectors are computed on the first :meth:`route` (building a graph stays
    instant) and shared by every router of the process over the same file. Without
    examples, routing numbers or a working embedding model, it routes by aliases alone,
    as :class:`AliasMatcher` does (and logs why, once).

    Args:
        file: The concept file's contents.
        embeddings: The embedding model; None = aliases only.
    """

    def __init__(self, file: ConceptFile, embeddings: EmbeddingFunction | None) -> None:
        self.file = file
        self.matcher = AliasMatcher(file.concepts)
        self.names = tuple(name for name, c in file.concepts.items() if c.examples)
        self.texts = tuple(e for n in self.names for e in file.concepts[n].examples)
        self.owner = tuple(i for i, n in enumerate(self.names) for _ in file.concepts[n].examples)
        usable = file.params is not None and bool(self.texts)
        self._embeddings = embeddings if usable else None
        self._centroids: Any = None
        self._failed = False
        self._lock = threading.Lock()

    @classmethod
    def from_file(
        cls, path: Path | None = None, embeddings: EmbeddingFunction | None = None
    ) -> ConceptRouter:
        """A router over a concept file (default ``PROMPTS_DIR / "concepts.yaml"``)."""
        return cls(load_concept_file(path), embeddings)

    @property
    def embeddings(self) -> EmbeddingFunction | None:
        """The embedding model routing by meaning uses (None: aliases only)."""
        return self._embeddings

    @property
    def by_meaning(self) -> bool:
        """Whether messages are routed by meaning (else by aliases alone)."""
        return self._embeddings is not None and not self._failed

    @property
    def alias_count(self) -> int:
        """Number of aliases across all concepts."""
        return self.matcher.alias_count

    def concept(self, name: str) -> Concept:
        """The concept called ``name`` (see :meth:`AliasMatcher.concept`)."""
        return self.matcher.concept(name)

    def deciding_alias(
        self, text: str, *, fuzzy: bool = False, cutoff: float = DEFAULT_CUTOFF
    ) -> tuple[AliasMatch | None, bool]:
        """The alias that decides which concept is weighed, and whether it leads.

        A leading exact alias beats any other; among equals :class:`AliasMatcher`'s
        ranking decides (exact, longer, earlier). A misspelt alias (fuzzy matching) never
        leads: it is weaker evidence, and the meaning score must reach
        ``alias_threshold``.

        Raises:
            ValueError: If ``cutoff`` is outside 0..1.
        """
        matches = self.matcher.candidates(text, fuzzy=fuzzy, cutoff=cutoff)
        if not matches:
            return None, False
        params = self.file.params
        starts = lead_positions(text, params.lead_in if params else frozenset())
        leading = [m for m in matches if m.kind == "exact" and m.position in starts]
        return (leading[0], True) if leading else (matches[0], False)

    def evidence(
        self,
        text: str,
        *,
        fuzzy: bool = False,
        cutoff: float = DEFAULT_CUTOFF,
        vector: Sequence[float] | None = None,
    ) -> Evidence:
        """Everything the decision weighs, for ``text``.

        Args:
            text: The user message.
            fuzzy: Also look for aliases with typos.
            cutoff: Lowest similarity a fuzzy alias needs (0..1).
            vector: ``text`` already embedded; None = embed it here (when by meaning).

        Raises:
            ValueError: If ``cutoff`` is outside 0..1.
        """
        alias, leads = self.deciding_alias(text, fuzzy=fuzzy, cutoff=cutoff)
        meaning, none = self._meaning(text, vector)
        return Evidence(meaning, alias, leads, none)

    def route(
        self,
        text: str,
        *,
        fuzzy: bool = False,
        cutoff: float = DEFAULT_CUTOFF,
        vector: Sequence[float] | None = None,
    ) -> Route:
        """Choose the concept ``text`` asks for, or none, and log why (never the text).

        Args:
            text: The user message.
            fuzzy: Also look for aliases with typos.
            cutoff: Lowest similarity a fuzzy alias needs (0..1).
            vector: ``text`` already embedded; None = embed it here (when by meaning).

        Returns:
            The decision; ``concept`` is None when no concept is asked for.

        Raises:
            ValueError: If ``cutoff`` is outside 0..1.
        """
        _check_cutoff(cutoff)
        params = self.file.params
        found = (
            self.evidence(text, fuzzy=fuzzy, cutoff=cutoff, vector=vector)
            if text.strip()
            else Evidence({}, None, False)
        )
        if not found.meaning or params is None:
            match = self.matcher.match(text, fuzzy=fuzzy, cutoff=cutoff)
            concept = match.concept if match else None
            return Route(concept, concept, 0.0, match, "aliases only")
        route = decide(found, params)
        if logger.isEnabledFor(logging.DEBUG):
            ranked = sorted(found.meaning.items(), key=lambda item: -item[1])[:3]
            logger.debug("meaning %s", ", ".join(f"{name}={value:.3f}" for name, value in ranked))
        logger.info(
            "%s concept=%s tier=%s meaning=%.3f none=%.3f%s",
            "routed" if route.concept else "not routed: weighed",
            route.candidate,
            route.tier,
            route.meaning,
            route.none,
            f" alias={route.alias.alias!r}" if route.alias else "",
        )
        return route

    def _meaning(self, text: str, vector: Sequence[float] | None) -> tuple[dict[str, float], float]:
        """Per concept, the cosine similarity of ``text`` to its centroid; and none."""
        if not self.by_meaning or not text.strip():
            return {}, -1.0
        import numpy as np

        assert self._embeddings is not None
        try:
            centroids, ordinary = self._centroids_of_examples()
            query = np.asarray(
                self._embeddings.embed_query(text) if vector is None else vector,
                dtype=np.float32,
            )
        except Exception as exc:  # no model: route by aliases, as before, and say so once
            with self._lock:
                if not self._failed:
                    logger.warning("routing by aliases only: the embedding model failed: %s", exc)
                self._failed = True
            return {}, -1.0
        query = _normalised(query)
        scores = centroids @ query
        meaning = {name: float(score) for name, score in zip(self.names, scores, strict=True)}
        return meaning, none_score(ordinary @ query)

    def _centroids_of_examples(self) -> tuple[Any, Any]:
        """The concepts' centroids ``(C, d)`` and the ordinary requests' vectors ``(N, d)``.

        Both normalised; computed once.
        """
        import numpy as np

        assert self._embeddings is not None
        with self._lock:
            if self._centroids is None:
                vectors = embed_examples(self._embeddings, self.texts)
                owner = np.asarray(self.owner)
                centroids = _normalised(
                    np.stack([vectors[owner == j].mean(axis=0) for j in range(len(self.names))])
                )
                ordinary = (
                    embed_examples(self._embeddings, self.file.no_concept)
                    if self.file.no_concept
                    else np.zeros((0, vectors.shape[1]), dtype=np.float32)
                )
                self._centroids = (centroids, ordinary)
            found: tuple[Any, Any] = self._centroids
            return found


def none_score(similarities: Any) -> float:
    """The none score from a message's similarities to the ordinary requests.

    Args:
        similarities: Cosine similarities, ``(N,)``, to each ``no_concept`` request.

    Returns:
        The mean of the :data:`NONE_NEIGHBOURS` highest (of all, if fewer); -1.0 if empty.
    """
    import numpy as np

    values = np.asarray(similarities, dtype=np.float32)
    if values.size == 0:
        return -1.0
    count = min(NONE_NEIGHBOURS, values.size)
    return float(np.partition(values, values.size - count)[values.size - count :].mean())


def decide(evidence: Evidence, params: RoutingParams) -> Route:
    """Apply the three rules of the section comment to ``evidence``.

    Args:
        evidence: What :meth:`ConceptRouter.evidence` found (with meaning scores).
        params: The calibrated numbers.

    Returns:
        The decision.
    """
    meaning, alias, none = evidence.meaning, evidence.alias, evidence.none
    if alias is not None and alias.concept in meaning:
        score = meaning[alias.concept]
        tier: Tier = "lead" if evidence.leads else "alias"
        need, margin = (
            (params.lead_threshold, params.lead_margin)
            if evidence.leads
            else (params.alias_threshold, params.alias_margin)
        )
        chosen = alias.concept if score >= need and score - none >= margin else None
        return Route(chosen, alias.concept, score, alias, tier, none)
    if not meaning:
        return Route(None, None, 0.0, alias, "meaning", none)
    best = max(meaning, key=lambda name: meaning[name])  # file order breaks ties
    score = meaning[best]
    chosen = best if score >= params.threshold and score - none >= params.margin else None
    return Route(chosen, best, score, None, "meaning", none)


# --- calibration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found.

    Attributes:
        params: The best routing numbers on the grid (``lead_in`` kept from the file).
        correct: Examples decided right with them, each scored without itself.
        total: Examples scored (concept examples and ordinary requests).
        per_tier: Per rule: (examples it decided, decided right).
        mistakes: (example, expected concept or None, chosen concept or None).
    """

    params: RoutingParams
    correct: int
    total: int
    per_tier: Mapping[str, tuple[int, int]]
    mistakes: tuple[tuple[str, str | None, str | None], ...]


THRESHOLD_GRID: tuple[float, ...] = tuple(round(-0.1 + 0.01 * i, 2) for i in range(81))
"""Values tried for each threshold: -0.10 to 0.70 in steps of 0.01."""

MARGIN_GRID: tuple[float, ...] = (NO_MARGIN, *(round(-0.2 + 0.01 * i, 2) for i in range(41)))
"""Values tried for each margin: off, then -0.20 to 0.20 in steps of 0.01."""


def leave_one_out(router: ConceptRouter) -> list[tuple[str, str | None, Evidence]]:
    """Every example of the file with the evidence the router would see, itself left out.

    The concept examples and the ordinary requests (``no_concept``) are the calibration
    set: each one is scored against centroids computed without it, and its aliases are
    found as for a message (exact matching).

    Returns:
        (example, its concept or None for an ordinary request, evidence), in file order.

    Raises:
        ValueError: The router has no embedding model or no examples.
    """
    import numpy as np

    if router.embeddings is None:
        raise ValueError("calibration needs examples, routing numbers and a model")
    names = router.names
    owner = np.asarray(router.owner)
    vectors = embed_examples(router.embeddings, router.texts)
    ordinary = (
        embed_examples(router.embeddings, router.file.no_concept)
        if router.file.no_concept
        else np.zeros((0, vectors.shape[1]), dtype=np.float32)
    )
    sums = np.stack([vectors[owner == j].sum(axis=0) for j in range(len(names))])
    counts = np.bincount(owner, minlength=len(names)).astype(np.float32)
    labelled = [
        (t, int(j), vectors[i]) for i, (t, j) in enumerate(zip(router.texts, owner, strict=True))
    ]
    labelled += [(t, -1, ordinary[i]) for i, t in enumerate(router.file.no_concept)]
    cases: list[tuple[str, str | None, Evidence]] = []
    for index, (text, label, vector) in enumerate(labelled):
        own, count = sums, counts
        if label >= 0:  # leave the example out of its own concept's centroid
            own, count = sums.copy(), counts.copy()
            own[label] -= vector
            count[label] -= 1
        centroids = _normalised(own / np.maximum(count, 1)[:, None])
        meaning = {n: float(v) for n, v in zip(names, centroids @ vector, strict=True)}
        near = ordinary @ vector
        if label < 0:  # and an ordinary request out of the none score
            near = np.delete(near, index - len(router.texts))
        alias, leads = router.deciding_alias(text)
        evidence = Evidence(meaning, alias, leads, none_score(near))
        cases.append((text, names[label] if label >= 0 else None, evidence))
    return cases


def _tier(evidence: Evidence) -> str:
    if evidence.alias is not None and evidence.alias.concept in evidence.meaning:
        return "lead" if evidence.leads else "alias"
    return "meaning"


def _middle_of_cheapest(costs: Any) -> int:
    """Index of the cheapest threshold, in the middle of the longest run of cheapest ones."""
    import numpy as np

    cheapest = np.flatnonzero(costs == costs.min())
    runs = np.split(cheapest, np.flatnonzero(np.diff(cheapest) != 1) + 1)
    longest = max(runs, key=len)
    return int(longest[len(longest) // 2])


def calibrate(router: ConceptRouter, *, change_cost: float = 2.0) -> Calibration:
    """The thresholds and margins that decide the file's own examples best, each left out.

    Each rule is calibrated on the examples it decides (:func:`leave_one_out`):
    ``lead_threshold``/``lead_margin`` on those with a leading alias,
    ``alias_threshold``/``alias_margin`` on those with an alias elsewhere,
    ``threshold``/``margin`` on those without. Every pair of :data:`MARGIN_GRID` and
    :data:`THRESHOLD_GRID` is tried and the cheapest decisions win; among equals, the
    margin in the middle of the longest run of margins that reach the cheapest cost, then
    the threshold in the middle of the longest run of cheapest ones at that margin (its
    neighbours are as good: it is no accident of one example).

    A wrong decision costs 1 when it is what the aliases alone would have decided (keep a
    wrong alias, miss a request without one) and ``change_cost`` when meaning changed it
    (veto a right alias, route by meaning where it should not): the router departs from
    the aliases only on evidence that is right more often than wrong, by that ratio.

    Args:
        router: A router with examples, ordinary requests and an embedding model.
        change_cost: What a wrong change to the aliases' decision costs against a wrong
            decision the aliases would have made anyway.

    Returns:
        The numbers, how many examples they decide right, per rule, and the mistakes.

    Raises:
        ValueError: The router cannot be calibrated (no model or examples).
    """
    import numpy as np

    cases = leave_one_out(router)
    grid = np.asarray(THRESHOLD_GRID)
    margins = np.asarray(MARGIN_GRID)
    chosen: dict[str, tuple[float, float]] = {}
    for tier in ("lead", "alias", "meaning"):
        subset = [(label, ev) for _, label, ev in cases if _tier(ev) == tier]
        if not subset:
            chosen[tier] = (0.0, NO_MARGIN)
            continue
        candidate = [decide(ev, RoutingParams(-2.0, -2.0, -2.0)).candidate for _, ev in subset]
        score = np.asarray(
            [ev.meaning[c] if c else -2.0 for (_, ev), c in zip(subset, candidate, strict=True)]
        )
        ahead = score - np.asarray([ev.none for _, ev in subset])
        right = np.asarray([lab == c for (lab, _), c in zip(subset, candidate, strict=True)])
        wanted = np.asarray([lab is not None for lab, _ in subset])
        # (examples, margins, thresholds): routed when both are reached
        routed = (score[:, None, None] >= grid[None, None, :]) & (
            ahead[:, None, None] >= margins[None, :, None]
        )
        if tier == "meaning":  # the aliases alone route nowhere: routing is the change
            when_routed = np.where(right, 0.0, change_cost)
            when_not = wanted.astype(float)
        else:  # the aliases alone route to the alias's concept: a veto is the change
            when_routed = np.where(right, 0.0, 1.0)
            when_not = np.where(right, change_cost, np.where(wanted, 1.0, 0.0))
        costs = np.where(routed, when_routed[:, None, None], when_not[:, None, None]).sum(axis=0)
        margin = _middle_of_cheapest(costs.min(axis=1))
        chosen[tier] = (float(grid[_middle_of_cheapest(costs[margin])]), float(margins[margin]))
    lead_in = router.file.params.lead_in if router.file.params else frozenset()
    params = RoutingParams(
        lead_threshold=chosen["lead"][0],
        alias_threshold=chosen["alias"][0],
        threshold=chosen["meaning"][0],
        lead_in=lead_in,
        lead_margin=chosen["lead"][1],
        alias_margin=chosen["alias"][1],
        margin=chosen["meaning"][1],
    )
    per_tier: dict[str, tuple[int, int]] = {}
    mistakes: list[tuple[str, str | None, str | None]] = []
    for text, expected, evidence in cases:
        got = decide(evidence, params).concept
        seen, right_so_far = per_tier.get(_tier(evidence), (0, 0))
        per_tier[_tier(evidence)] = (seen + 1, right_so_far + (got == expected))
        if got != expected:
            mistakes.append((text, expected, got))
    correct = sum(right for _, right in per_tier.values())
    return Calibration(params, correct, len(cases), per_tier, tuple(mistakes))
