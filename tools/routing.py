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

import itertools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

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

    """

    name: str
    prompt: str
    aliases: tuple[str, ...]


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


class _ConceptFile(BaseModel):
    """The whole of ``concepts.yaml``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    concepts: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")], _ConceptSpec],
        Field(min_length=1),
    ]


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
    return "the file", "a mapping with a top-level 'concepts' key"


def _parse_concepts(data: object, source: str) -> dict[str, Concept]:
    """Validate the parsed YAML document and turn it into concepts.

    Raises:
        ValueError: Naming ``source``, the concept and the field.

    """
    try:
        spec = _ConceptFile.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{source}: {describe_validation_error(exc, _where)}") from None
    concepts = {
        name: Concept(name=name, prompt=body.prompt, aliases=tuple(body.aliases))
        for name, body in spec.concepts.items()
    }
    _build_entries(concepts, source)  # alias-level checks (empty, duplicates)
    return concepts


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


def load_concepts(path: Path | None = None) -> dict[str, Concept]:
    """Load and validate the concept file.

    Args:
        path: YAML file to read; defaults to ``PROMPTS_DIR / "concepts.yaml"``.

    Returns:
        Concepts by name, in file order.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not valid YAML (a key given twice included) or breaks
            the schema: a missing prompt, an empty alias list, a non-string alias, an
            unknown key, or the same alias twice. The message names the file, the
            concept and the field.

    """
    path = PROMPTS_DIR / "concepts.yaml" if path is None else path
    text = path.read_text(encoding="utf-8")
    try:
        data = parse_yaml(text)  # duplicate keys are errors: a concept given twice
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from exc
    return _parse_concepts(data, str(path))


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
