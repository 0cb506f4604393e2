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

Fuzzy matching (off by default) scores each alias against every window of as many tokens and
keeps scores >= the cutoff, to catch typos such as "sumarize this book" or "proofraed". The
score is rapidfuzz's normalised Indel similarity (``fuzz.ratio`` / 100): twice the longest
common subsequence of the two strings over their total length, 0..1. A near match counts
only when it has the shape of a typo (see :func:`typo_of`): each word that differs from the
alias's starts with the same letter and neither word extends the other, so "standing for"
is no typo of "stand for", "I'm five years old" none of "like a five year old", "give me the
list" none of "give me the gist".

Every decision is logged on the ``assistant.aliases`` logger: each candidate at DEBUG, the
winner (and why it won) at INFO. Message text is never logged, only token counts.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import logging
import os
import re
import threading
import zipfile
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
    "FUZZY_MIN_LETTERS",
    "PROMPTS_DIR",
    "AliasMatch",
    "AliasMatcher",
    "CommandObject",
    "Concept",
    "corrected",
    "following",
    "load_concepts",
    "load_system_prompt",
    "normalise",
    "typo_of",
]

logger = logging.getLogger("assistant.aliases")

PROMPTS_DIR: Path = Path(__file__).resolve().parents[1] / "prompts"

DEFAULT_CUTOFF = 0.85
# Fuzzy matching skips one-word aliases shorter than this: one edit of a short word is too
# often another real word ("debut" for "debug", "quit" for "quiz") rather than a typo.
FUZZY_MIN_LETTERS = 6
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
class CommandObject:
    """What must follow a concept's command for the command to mean the concept.

    A summary needs text to summarise: in "TLDR; the meeting is at 5, where is it?" the
    user's own TL;DR marker leads a question of theirs, and there is nothing to summarise.
    Such a marker is followed by the user's own summary of their situation, then their
    question. So what follows a command (its last sentence ending in "?") is a question of
    the user's own when a statement comes before that question ("the meeting is at 5,
    where is it?", "meeting at 5, location?") or the question speaks of the user
    (``speaker``: "how do I get to the station?"). A bare question about something absent
    ("tl;dr what was decided?", "what are the key points?") asks about the text or the
    conversation: the command acts on it. Whatever it asks, what follows is the object when
    it names text (``names``: "tl;dr what does this article say?") or is a pasted passage
    of ``passage_words`` words or more. Nothing at all after the command ("tldr?") is an
    object too: the command acts on what came before, or the concept's prompt asks for it.

    Attributes:
        speaker: Normalised words by which the user speaks of themselves ("i", "my",
            "je", "ich"): a question holding one is about their own affairs, not a text.
        names: Normalised token sequences that name text wherever they stand ("this
            article", "the following"); in ``leading``, those that count only as the first words
            after the command ("TLDR this: ...", not "is this normal?").
        leading: See ``names``.
        passage_words: Words (normalised tokens) from which what follows is a passage.
    """

    speaker: frozenset[str]
    names: tuple[tuple[str, ...], ...] = ()
    leading: tuple[tuple[str, ...], ...] = ()
    passage_words: int = 40

    def present(self, rest: str) -> bool:
        """Whether ``rest`` plainly is something the command acts on, whatever else it is.

        Nothing (the command acts on what came before: "TL;DR?"), a text named ("of the
        thread above", "this:") or a pasted passage: with one, the command routes even
        when the classifier finds its concept all but impossible (see
        :data:`COMMAND_FLOOR`).

        Args:
            rest: What follows the command in the message (any text, possibly empty).
        """
        tokens = tuple(normalise(rest))
        if not tokens or len(tokens) >= self.passage_words:
            return True
        if any(tokens[: len(name)] == name for name in self.leading):
            return True
        return any(_contains(tokens, name) for name in self.names)

    def accepts(self, rest: str) -> bool:
        """Whether ``rest``, the text after a leading command, is something it acts on.

        Args:
            rest: What follows the command in the message (any text, possibly empty).

        Returns:
            False when ``rest`` is a short question of the user's own (after a statement
            of theirs, or about themselves) that names no text.
        """
        if self.present(rest):
            return True
        asked = _LEADING_PUNCTUATION.sub("", fold(rest)).rstrip()
        if not asked.endswith(_QUESTION_MARKS):
            return True
        # the marks that end it ("...money.?" ends one sentence, it starts none)
        question = asked.rstrip("".join(_QUESTION_MARKS) + ".!\u2026 \t")
        if _CLAUSE_END.search(question):
            return False  # a statement of the user's own, then their question
        return self.speaker.isdisjoint(normalise(question))


# What ends a question once folded (NFKC makes the full-width "？" a "?"); what ends a
# sentence or a clause inside what follows a command ("the meeting is at 5, where is it?",
# "cancelled again - who do I complain to?"), not a hyphen inside a word or a decimal point.
_QUESTION_MARKS = ("?", "\u061f")  # and the Arabic question mark
_CLAUSE_END = re.compile(r"[!?\u061f\n;]|[.,:](?!\d)|\s[-\u2013\u2014]+\s")


def _contains(tokens: Sequence[str], words: Sequence[str]) -> bool:
    """Whether ``words`` occur in ``tokens`` as a contiguous sequence."""
    length = len(words)
    return any(
        tuple(tokens[i : i + length]) == tuple(words) for i in range(len(tokens) - length + 1)
    )


@dataclass(frozen=True)
class Concept:
    """A specialised prompt and the phrases that select it.

    Attributes:
        name: Stable snake_case identifier, e.g. ``"summarise_book"``.
        prompt: Instruction added to the base system prompt for the turn.
        aliases: Phrases (as written in the YAML file) that select the concept.
        examples: Requests for the concept as people word them, for routing by meaning.
        commands: Aliases that name the concept whatever follows when they lead a request
            ("ELI5 DNS", "tl;dr <text>"): the classifier reads only the rest of such a
            short request, which says nothing of the concept.
        command_object: What must follow a leading command for it (or the classifier) to
            choose the concept; None = anything ("ELI5: how does DNS work?" asks for a
            simple answer to a question, "proofread: where is it?" for a proofread one).
        command_sentence: Whether a sentence after a command is plainly its object
            ("reword Their going too the store."): true for commands that act on any
            text, not for "eli5" ("Eli5 Manning retired in 2020." is about a player).

    """

    name: str
    prompt: str
    aliases: tuple[str, ...]
    examples: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    command_object: CommandObject | None = None
    command_sentence: bool = False


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


def corrected(text: str, match: AliasMatch) -> str:
    """``text`` folded, with the words of a fuzzy ``match`` replaced by its alias.

    What the word features read when fuzzy matching found a typo of an alias: "Expalin
    like I'm five: DNS" reads as "explain like i'm five: dns", so a misspelt alias weighs
    what the alias weighs. An exact match leaves the folded text as it is.

    Args:
        text: The message ``match`` was found in.
        match: An alias found in ``text`` (positions are in ``normalise(text)``).

    Returns:
        The folded text, corrected.
    """
    folded = fold(text)
    if match.kind == "exact":
        return folded
    spans = _token_spans(folded)
    start = spans[match.position][0]
    end = spans[match.position + match.length - 1][1]
    return folded[:start] + fold(match.alias) + folded[end:]


def following(text: str, match: AliasMatch) -> str:
    """What follows ``match``'s words in ``text``, folded ("" when nothing does).

    Found by token position, so it is the text after this occurrence of the alias,
    however it was typed ("TL DR", "t.l.d.r" misspelt, a fuzzy match).

    Args:
        text: The message ``match`` was found in.
        match: An alias found in ``text`` (positions are in ``normalise(text)``).

    Returns:
        The folded text after the alias's last word.
    """
    folded = fold(text)
    spans = _token_spans(folded)
    return folded[spans[match.position + match.length - 1][1] :]


def _token_spans(folded: str) -> list[tuple[int, int]]:
    """Per token of ``normalise(folded)``, its characters in the folded text."""
    spans: list[tuple[int, int]] = []
    for found in _TOKEN_RE.finditer(folded):
        token = found.group().replace("'", "")
        spans.extend([found.span()] * len(_EXPANSIONS.get(token, (token,))))
    return spans


# --- the concept file ------------------------------------------------------------------


_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _CommandObjectSpec(BaseModel):
    """A concept's ``command_object`` as written in ``concepts.yaml``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    speaker: Annotated[list[_Text], Field(min_length=1)]
    names: list[_Text] = Field(default_factory=list)
    passage_words: Annotated[int, Field(ge=1)] = 40


class _ConceptSpec(BaseModel):
    """One concept as written in ``concepts.yaml``."""

    # strict: a number is no prompt; extra="forbid": a misspelt key is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt: _Text
    aliases: Annotated[
        list[Annotated[str, StringConstraints(strip_whitespace=True)]], Field(min_length=1)
    ]
    examples: list[_Text] = Field(default_factory=list)
    commands: list[_Text] = Field(default_factory=list)
    command_object: _CommandObjectSpec | None = None
    command_sentence: bool = False


class _RoutingSpec(BaseModel):
    """The ``routing`` section: how meaning and aliases are weighed (calibrated numbers)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    threshold: Annotated[float, Field(ge=0, le=1)]
    regularisation: Annotated[float, Field(gt=0)]
    alias_weight: Annotated[float, Field(ge=0)]
    lexical_weight: Annotated[float, Field(ge=0)] = 0.0
    lead_in: list[_Text] = Field(default_factory=list)
    command_lead_in: list[_Text] = Field(default_factory=list)
    question_words: list[_Text] = Field(default_factory=list)


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
        case ("concepts", name, "command_object", *_):
            return (
                f"concept {name!r}: 'command_object'",
                "a mapping: speaker (non-empty list of words), names (list of words; "
                "'^' = only first after the command), passage_words (a positive integer)",
            )
        case ("no_concept", *_):
            return "'no_concept'", "a list of ordinary requests (non-empty strings)"
        case ("routing", *rest):
            field = f": {rest[0]!r}" if rest else ""
            return f"'routing'{field}", (
                "numbers (threshold, ...), lead_in, command_lead_in and question_words"
            )
    return "the file", "a mapping with a top-level 'concepts' key"


@dataclass(frozen=True)
class RoutingParams:
    """How the router weighs meaning and aliases (``routing`` in ``concepts.yaml``).

    A logistic regression over the message's embedding and its alias evidence gives each
    concept, and *none*, a probability (see the section comment on routing by meaning).
    The most probable concept is chosen when it is more probable than none and its
    probability reaches ``threshold``. See :class:`ConceptRouter`.

    Attributes:
        threshold: Probability (0..1) the most probable concept needs to be chosen.
        lead_in: Words a request may start with before its alias still leads.
        regularisation: The classifier's inverse regularisation strength (scikit-learn's
            ``C``): larger fits the examples more closely.
        alias_weight: Value of an alias feature (0 = aliases are not features), against
            embedding components of about 0.05: how much the classifier can lean on them.
        lexical_weight: Length of the message's word vector (see :func:`lexical_terms`;
            0 = no word features): how much the classifier can lean on the words
            themselves ("translated" is not "translate", "simply" marks a simple
            explanation), which a sentence embedding blurs.
    """

    threshold: float
    lead_in: frozenset[str] = frozenset()
    regularisation: float = 64.0
    alias_weight: float = 0.5
    lexical_weight: float = 0.0


@dataclass(frozen=True)
class ConceptFile:
    """Everything ``concepts.yaml`` holds.

    Attributes:
        concepts: Concepts by name, in file order.
        no_concept: Ordinary requests that must not route anywhere (what the routing
            numbers are calibrated against).
        params: The calibrated routing numbers; None if the file has none (aliases only).
        question_words: Normalised words that open a question ("why", "how", "est"):
            a question they open after a command that takes anything ("eli5 why is the
            sky blue?") is that command's object (``routing.question_words``).
        command_lead_in: Normalised words that, besides ``params.lead_in``, may come
            before a command that still leads: the command asked for as a thing ("give
            me a tl;dr of ...", "can I get a quick ELI5 of ...";
            ``routing.command_lead_in``). Not in the classifier's features.
    """

    concepts: dict[str, Concept]
    no_concept: tuple[str, ...] = ()
    params: RoutingParams | None = None
    question_words: frozenset[str] = frozenset()
    command_lead_in: frozenset[str] = frozenset()


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
            commands=tuple(body.commands),
            command_object=_command_object(body.command_object, f"{source}: concept {name!r}"),
            command_sentence=body.command_sentence,
        )
        for name, body in spec.concepts.items()
    }
    _build_entries(concepts, source)  # alias-level checks (empty, duplicates)
    for concept in concepts.values():
        listed = {tuple(normalise(alias)) for alias in concept.aliases}
        if stray := [c for c in concept.commands if tuple(normalise(c)) not in listed]:
            raise ValueError(
                f"{source}: concept {concept.name!r}: commands {stray} are not among its aliases"
            )
    params = None
    questions: frozenset[str] = frozenset()
    asked_for: frozenset[str] = frozenset()
    if spec.routing is not None:
        cfg = spec.routing
        lead_in = frozenset(token for word in cfg.lead_in for token in normalise(word))
        params = RoutingParams(
            cfg.threshold, lead_in, cfg.regularisation, cfg.alias_weight, cfg.lexical_weight
        )
        questions = frozenset(token for word in cfg.question_words for token in normalise(word))
        asked_for = frozenset(token for word in cfg.command_lead_in for token in normalise(word))
    return ConceptFile(concepts, tuple(spec.no_concept), params, questions, asked_for)


def _command_object(spec: _CommandObjectSpec | None, where: str) -> CommandObject | None:
    """Normalise a concept's ``command_object`` (see :class:`CommandObject`).

    Raises:
        ValueError: Naming ``where``, for a name without words or a speaker word that is
            not one word.
    """
    if spec is None:
        return None
    names: list[tuple[str, ...]] = []
    leading: list[tuple[str, ...]] = []
    for name in spec.names:
        tokens = tuple(normalise(name.removeprefix("^")))
        if not tokens:
            raise ValueError(f"{where}: command_object name {name!r} has no words")
        (leading if name.startswith("^") else names).append(tokens)
    speaker: set[str] = set()
    for word in spec.speaker:
        words = normalise(word)
        if len(words) != 1:
            raise ValueError(f"{where}: command_object speaker word {word!r} is not one word")
        speaker.update(words)
    return CommandObject(frozenset(speaker), tuple(names), tuple(leading), spec.passage_words)


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


def typo_of(words: Sequence[str], alias: Sequence[str]) -> bool:
    """Whether ``words`` could be ``alias`` mistyped (token for token, both normalised).

    Each word that differs from the alias's word in its place must start with the same
    letter (people seldom mistype the first one, and a different first letter is most often
    another word: "list" for "gist", "hotter" for "better") and the message's word may not
    extend the alias's (an inflection or another word, not a typo: "standing" for
    "stand", "translated" for "translate", "years" for "year", "trivial" for "trivia"),
    unless by doubling its last letter ("quizz" for "quiz"). A word cut short is a typo
    ("fiv" for "five", "tel" for "tell"). How similar the words are is the cutoff's
    business.

    Args:
        words: The message's tokens in the window.
        alias: The alias's tokens, as many.

    Returns:
        True when every differing word pair has the shape of a typo.
    """
    if len(words) != len(alias):
        return False
    for word, wanted in zip(words, alias, strict=True):
        if word == wanted:
            continue
        if word[0] != wanted[0]:
            return False
        if word.startswith(wanted) and word[len(wanted) :] != wanted[-1]:
            return False
    return True


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
            if len(entry.tokens) > 1 or len(entry.joined) >= FUZZY_MIN_LETTERS:
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
            fuzzy: Also look for misspelt aliases (see :func:`typo_of`).
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
            fuzzy: Also look for misspelt aliases (see :func:`typo_of`).
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
        """Compare each alias with every token window of the same length.

        The score is ``Indel.normalized_similarity(window, alias)``; rapidfuzz skips pairs
        that cannot reach the cutoff, and a pair that does counts only if it has the shape of
        a typo (:func:`typo_of`). Spans already matched exactly are skipped: there the exact
        match is the truth, and a fuzzy reading of the same words would only add noise.
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
                    if not typo_of(tokens[position : position + length], entry.tokens):
                        continue
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
# example utterances per route, compared by embedding, a route for "none"), with a
# classifier rather than a similarity threshold: a class-balanced logistic regression
# (scikit-learn, as the guardrails' semantic layer) is fitted when the router is first
# used, on the concepts' examples and the ordinary requests of concepts.yaml (no_concept:
# questions of fact, talk about the conversation itself, "tell me about X", statements,
# thanks, a concept's words in another sense), "none" being a class of its own.
#
# Its features are the message's all-MiniLM-L6-v2 vector, its words and the alias
# evidence. The words: tf-idf of the words and word pairs of the message (binary counts,
# idf over the training texts, terms of at least two of them), plus the word and the pair
# that lead each clause marked "^", the vector of length lexical_weight. A mean-pooled
# sentence embedding blurs what tells senses apart ("translated from French" is near
# "translate from French", "Explain how vaccines work" near "Explain how vaccines work
# like I'm five"); words do not: "translated", "simply", "^sum up" against "to sum up"
# each get a weight of their own per concept. The alias evidence: per concept, "an alias
# of it leads a request" (the first words of a sentence or clause, after lead-in words
# such as "please", "can you") and "an alias of it sits elsewhere", each worth
# alias_weight (calibrated to 0 today: the word features carry the aliases' words, and
# where they lead). With fuzzy matching on, a typo of an alias (see typo_of) counts where
# the alias would, and the message is read, words and embedding, with the alias in its
# place (corrected()): "Expalin like I'm five: DNS" weighs what "explain like i'm five:
# dns" weighs, so fuzzy matching has the effect of the alias, no more. The most probable
# concept is chosen when it is more probable than none and reaches threshold.
#
# The words are read from the request, not from the material it carries (request_text):
# a quoted span and a snippet of code after the request are one placeholder word each.
# "What's 'where is the library' in French?" then reads "what is <quoted> in french"
# (its words "where is", "library" had voted for a question of fact), and the tokens of
# "Why doesn't this work? x = [1, 2, 3]; x[3]" no longer vote for explaining code.
#
# Measured (issue 12): with the word features and the examples and ordinary requests
# written for the failure kinds, the file's examples cross-validated 851/929 (782/911
# without words, same folds); the routing corpus 263/263 with 5 known failures (206/206
# with 26 before), its held-out phrasings 47/48 (44/48), those of
# tests/support/routing_heldout.py 47/48 (43/48). The centroid router before the
# classifier: 41/48 and 38/48. Then, with the request read apart from its material and
# examples of the last five failures' kinds (debugging vs explaining a snippet, questions
# about a language's behaviour, translation asked as a question, short requests about an
# item, indirect quiz requests): cross-validated 979/1067 (976 with the words read from
# the whole message, same folds), the corpus 303/303 with no known failures, both
# held-out sets 48/48; without the placeholders two of the five fail again.
#
# The numbers (threshold, regularisation, alias_weight, lexical_weight) are chosen by
# cross-validation on the file's own examples (calibrate(); python
# scripts/calibrate_routing.py --write).

_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]+")

# The word features read the request, not the material it is about. Quoted text ("What's
# 'where is the library' in French?") is material: an opening quote after a non-word
# character, the closing one (the next of the same kind on the line) before one, so
# apostrophes ("doesn't", "kids'") are not quotes (fold() has made curly quotes straight).
# So is code or an error message after the first "?" or ":" ("Why doesn't this work?
# x = [1, 2, 3]; x[3]"), told from prose by a character of code on its line. Each becomes
# one placeholder word: "'where is' in French" reads as "<quoted> in French", and the
# words of a snippet vote for no concept. Both are found in one pass over the text (a
# regular expression that looks ahead from each quote or colon is quadratic on a paste).
_QUOTE_MARK = re.compile(r"""(?<!\w)(['"`])(?=\S)|(?<=\S)(['"`])(?!\w)|\n""")
_CODE_START = re.compile(r"[?:]\s+(?=\S)")
_CODE_CHARS = frozenset("=(){}[];<>$|\\")
QUOTED_WORD = "quotedtext"
"""Stands for a quoted span in the word features (see :func:`request_text`)."""
CODE_WORD = "codetext"
"""Stands for code after a request in the word features (see :func:`request_text`)."""


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each quoted span of ``text``, quotes included, in order."""
    spans: list[tuple[int, int]] = []
    start, mark = -1, ""
    for found in _QUOTE_MARK.finditer(text):
        opening, closing = found.group(1), found.group(2)
        if found.group() == "\n":
            start = -1  # a quote does not run over a line break
        elif start < 0:
            if opening:
                start, mark = found.start(), opening
        elif closing == mark and found.start() > start + 1:
            spans.append((start, found.end()))
            start = -1
    return spans


def _code_start(text: str) -> int:
    """Where code after a request starts in ``text`` (``len(text)`` if nowhere).

    After the first ``?`` or ``:`` (and white space) from which the rest of the line
    holds a character of code.
    """
    last_code: dict[int, int] = {}  # line number -> position of its last code character
    line = 0
    for index, char in enumerate(text):
        if char == "\n":
            line += 1
        elif char in _CODE_CHARS:
            last_code[line] = index
    breaks = [index for index, char in enumerate(text) if char == "\n"]
    for found in _CODE_START.finditer(text):
        if last_code.get(bisect.bisect_left(breaks, found.end()), -1) >= found.end():
            return found.end()
    return len(text)


def request_text(text: str) -> str:
    """``text`` folded, its quoted spans and a trailing snippet of code each one word.

    What the word features are read from (see :func:`lexical_terms`); the embedding
    still reads the whole message. Linear in the length of ``text``.

    Args:
        text: Any text, e.g. a user message.

    Returns:
        The folded text with the rest of the text replaced by :data:`CODE_WORD` from the
        first ``?`` or ``:`` (followed by white space) whose line holds a character of
        code after it (one of ``= ( ) { } [ ] ; < > $ |`` or a backslash), and each
        quoted span before that by :data:`QUOTED_WORD`.
    """
    folded = fold(text)
    cut = _code_start(folded)
    parts: list[str] = []
    done = 0
    for start, end in _quoted_spans(folded[:cut]):
        parts += [folded[done:start], f" {QUOTED_WORD} "]
        done = end
    parts.append(folded[done:cut])
    if cut < len(folded):
        parts.append(f" {CODE_WORD}")
    return "".join(parts)


# A word feature must occur in at least this many training texts: rarer ones are topics
# ("Neo4j", "Tudors"), not the way a request is worded.
LEXICAL_MIN_COUNT = 2


def lexical_terms(text: str, lead_in: frozenset[str] = frozenset()) -> frozenset[str]:
    """The words and word pairs of ``text`` that word features are made of.

    Unigrams and bigrams of :func:`normalise` tokens, whole words only and not stemmed:
    "translated" and "translate" are different terms, which is the point (a past tense
    tells of a translation made, not asked for). The word and the pair that lead each
    clause (after ``lead_in`` words, as for aliases) are terms of their own too, marked
    ``^``: "^sum up" starts a request, "sum up" inside "I'm trying to sum up my hours"
    does not; "^is" starts a question about something ("is X a metaphor?").

    Args:
        text: Any text, e.g. a user message.
        lead_in: Normalised lead-in tokens (see :func:`lead_positions`).

    Returns:
        The set of terms (pairs joined by a space); empty for text without words.
    """
    text = request_text(text)
    tokens = normalise(text)
    terms = {*tokens, *(" ".join(pair) for pair in itertools.pairwise(tokens))}
    for clause in _CLAUSE_BREAK.split(text):
        words = normalise(clause)
        start = next((i for i, t in enumerate(words) if t not in lead_in), len(words))
        if start < len(words):
            terms.add("^" + words[start])
            terms.add("^" + " ".join(words[start : start + 2]))
    return frozenset(terms)


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
        meaning: Per concept, the classifier's probability (0..1) that the message asks
            for it (empty when routing by meaning is off or unavailable).
        alias: The alias that decides the alias features (a leading one first, then the
            most specific), or None.
        leads: Whether ``alias`` leads a request.
        none: The classifier's probability that no concept is asked for (-1.0 without
            a classifier).
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
        candidate: The most probable concept (chosen or not); None without any.
        meaning: Its probability (0.0 when routing by aliases only).
        none: The probability of no concept (see :class:`Evidence`; -1.0 by aliases only).
        alias: The alias found in the message, if any (whichever concept it belongs to).
        tier: The alias evidence the classifier weighed: ``lead`` (an alias leads a
            request), ``alias`` (an alias elsewhere, or fuzzy), ``meaning`` (no alias),
            or ``aliases only`` (no examples, routing numbers or embedding model: the
            alias decides alone, as :class:`AliasMatcher` does).
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


# Example vectors and the classifier fitted on them are the same for every router of a
# process over the same texts and model: computed once (a graph per eval case or per test
# would otherwise redo them).
_EXAMPLE_VECTORS: dict[tuple[str, str], Any] = {}
_CLASSIFIERS: dict[tuple[str, str, float, float, float], Classifier] = {}
_EXAMPLE_LOCK = threading.Lock()
# Version of the feature layout (``ConceptRouter._features``): a change makes classifiers
# kept on disk by earlier code unusable, so it is part of their file names.
FEATURES_VERSION = 3


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


@dataclass(frozen=True)
class Classifier:
    """A fitted logistic regression: class scores are ``weights @ features + bias``.

    Attributes:
        weights: ``(C + 1, d + 2C)``: one row per concept (router order), then none.
        bias: ``(C + 1,)``.
    """

    weights: Any
    bias: Any

    @classmethod
    def load(cls, path: Path) -> Classifier | None:
        """The classifier saved at ``path``; None if it is missing or unreadable."""
        import numpy as np

        try:
            with np.load(path) as saved:
                return cls(saved["weights"], saved["bias"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if not isinstance(exc, FileNotFoundError):
                logger.info("routing: refitting, cannot read %s: %s", path, exc)
            return None

    def save(self, path: Path) -> None:
        """Keep the classifier at ``path`` (written whole, then renamed into place).

        A cache that cannot be written costs the next process a fit, nothing else: the
        error is logged, not raised.
        """
        import numpy as np

        partial = path.with_suffix(f".{os.getpid()}.part.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(partial, weights=self.weights, bias=self.bias)
            partial.replace(path)
        except OSError as exc:
            logger.info("routing: cannot keep the classifier in %s: %s", path, exc)
            partial.unlink(missing_ok=True)

    def probabilities(self, features: Any) -> Any:
        """Softmax of the class scores: ``(n, C + 1)`` for ``(n, d + 2C)`` features."""
        import numpy as np

        scores = np.atleast_2d(features) @ self.weights.T + self.bias
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)


def fit_classifier(features: Any, labels: Any, classes: int, regularisation: float) -> Classifier:
    """Fit the class-balanced logistic regression the router decides with.

    Args:
        features: ``(n, f)`` training features.
        labels: ``(n,)`` class indices in ``0..classes - 1`` (the last one is none).
        classes: Number of classes, none included; each needs at least one example.
        regularisation: scikit-learn's ``C``.

    Returns:
        The fitted weights, one row per class in index order.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    # balanced: none has ~20 times the examples of a concept, and must not win by count
    model = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=3000)
    # One BLAS thread: on a problem this small (~1,000 x 2,000) threads cost more than they
    # give; measured on a busy 2-core machine, 0.5 s a fit against 10 s.
    with threadpool_limits(limits=1):
        model.fit(features, labels)
    order = np.searchsorted(model.classes_, np.arange(classes))
    return Classifier(np.asarray(model.coef_)[order], np.asarray(model.intercept_)[order])


class ConceptRouter:
    """Route a message to a concept by its aliases and its meaning (see the section comment).

    Example vectors are computed, and the classifier fitted, on the first :meth:`route`
    (building a graph stays instant); both are shared by every router of the process over
    the same file. Without examples, routing numbers or a working embedding model, it
    routes by aliases alone, as :class:`AliasMatcher` does (and logs why, once).

    Args:
        file: The concept file's contents.
        embeddings: The embedding model; None = aliases only.
        cache_dir: Where the fitted classifier is kept between processes (under
            ``routing/``, named by a hash of everything it was fitted on), so a cold start
            neither embeds the examples nor fits; None = fit in every process.
    """

    def __init__(
        self,
        file: ConceptFile,
        embeddings: EmbeddingFunction | None,
        cache_dir: Path | None = None,
    ) -> None:
        self.file = file
        self.cache_dir = cache_dir
        self.matcher = AliasMatcher(file.concepts)
        self.names = tuple(name for name, c in file.concepts.items() if c.examples)
        self.texts = tuple(e for n in self.names for e in file.concepts[n].examples)
        self.owner = tuple(i for i, n in enumerate(self.names) for _ in file.concepts[n].examples)
        usable = file.params is not None and bool(self.texts) and bool(file.no_concept)
        self._embeddings = embeddings if usable else None
        self._failed = False
        self._lock = threading.Lock()
        # names the training data in the classifier cache (hashed once, not per message)
        self._digest = hashlib.sha256(
            "\x00".join((*self.texts, "\x01", *file.no_concept, "\x01", *self.names)).encode()
        ).hexdigest()
        self._vocabulary: dict[str, int] | None = None
        self._idf: Any = None
        self._lead_in = file.params.lead_in if file.params else frozenset()
        self._narrower = narrower_concepts(file.concepts)

    @property
    def vocabulary(self) -> Mapping[str, int]:
        """Word feature columns by term, in sorted order.

        Each term of the training texts seen in at least :data:`LEXICAL_MIN_COUNT` of
        them: a function of the file alone, so a classifier kept on disk under the file's
        hash has the same columns.
        """
        return self._lexicon()[0]

    def _lexicon(self) -> tuple[dict[str, int], Any]:
        """The vocabulary and each term's inverse document frequency, ``log(N / df)``.

        Over the training texts, so "and" or "i am" weigh little, "simply" much.
        """
        import numpy as np

        if self._vocabulary is None:
            texts = (*self.texts, *self.file.no_concept)
            counts: dict[str, int] = {}
            for text in texts:
                for term in lexical_terms(text, self._lead_in):
                    counts[term] = counts.get(term, 0) + 1
            kept = sorted(t for t, n in counts.items() if n >= LEXICAL_MIN_COUNT)
            idf = np.log(len(texts) / np.asarray([counts[t] for t in kept], dtype=np.float32))
            self._idf = idf.astype(np.float32)
            self._vocabulary = {term: index for index, term in enumerate(kept)}
        return self._vocabulary, self._idf

    def lexical_features(self, text: str, weight: float) -> Any:
        """The word features of ``text``: ``(V,)``, tf-idf with binary term counts.

        The known terms' idf, the vector scaled to length ``weight``.

        Args:
            text: The message.
            weight: The vector's length (0: all zero, and none are computed).
        """
        import numpy as np

        vocabulary, idf = self._lexicon()
        features = np.zeros(len(vocabulary), dtype=np.float32)
        if weight > 0:
            found = [vocabulary[t] for t in lexical_terms(text, self._lead_in) if t in vocabulary]
            features[found] = idf[found]
            norm = float(np.linalg.norm(features))
            if norm > 0:
                features *= weight / norm
        return features

    @classmethod
    def from_file(
        cls,
        path: Path | None = None,
        embeddings: EmbeddingFunction | None = None,
        cache_dir: Path | None = None,
    ) -> ConceptRouter:
        """A router over a concept file (default ``PROMPTS_DIR / "concepts.yaml"``)."""
        return cls(load_concept_file(path), embeddings, cache_dir)

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
        """The alias that sets the alias features, and whether it leads.

        A leading alias beats any other; among equals :class:`AliasMatcher`'s ranking
        decides (exact, longer, earlier). A misspelt alias (fuzzy matching, which only
        takes near matches with the shape of a typo) leads as the alias would: in
        "Expalin like I'm five: DNS" the misspelt request leads, not "like I'm five".

        Raises:
            ValueError: If ``cutoff`` is outside 0..1.
        """
        matches = self.matcher.candidates(text, fuzzy=fuzzy, cutoff=cutoff)
        if not matches:
            return None, False
        params = self.file.params
        starts = lead_positions(text, params.lead_in if params else frozenset())
        leading = [m for m in matches if m.position in starts]
        return (leading[0], True) if leading else (matches[0], False)

    def alias_features(self, alias: AliasMatch | None, leads: bool, weight: float) -> Any:
        """The ``2C`` alias features: per concept, a leading alias, then an alias elsewhere.

        Args:
            alias: The deciding alias (see :meth:`deciding_alias`), or None.
            leads: Whether it leads a request.
            weight: The value of the feature that is on.
        """
        import numpy as np

        features = np.zeros(2 * len(self.names), dtype=np.float32)
        if alias is not None and alias.concept in self.names:
            index = self.names.index(alias.concept)
            features[index if leads else len(self.names) + index] = weight
        return features

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
        meaning, none = self._meaning(text, vector, alias, leads)
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
            The decision; ``concept`` is None when no concept is asked for. A command
            leading the request with its object plainly there (see :meth:`_commands`)
            decides it, whatever concept the classifier puts first ("reword: 'We regret
            to inform you.'" is no translation; "Summarize the plot of Hamlet" is left to
            the classifier: summarise_book). When a command leads a question of the
            user's own that its concept cannot act on (see :class:`CommandObject`: "TLDR;
            the meeting is at 5, where is it?"), the decision for what follows the
            command, routed alone.

        Raises:
            ValueError: If ``cutoff`` is outside 0..1.
        """
        _check_cutoff(cutoff)
        params = self.file.params
        alias, leads = self.deciding_alias(text, fuzzy=fuzzy, cutoff=cutoff)
        rest = self._question_after(text, alias, leads)
        if rest is not None:
            # The user's own marker ("TL;DR") is no request, and its words would tip the
            # classifier (to "translate" before a question in Russian): what follows is.
            return self.route(rest, fuzzy=fuzzy, cutoff=cutoff)
        meaning, none = self._meaning(text, vector, alias, leads)
        found = Evidence(meaning, alias, leads, none)
        if not found.meaning or params is None:
            match = self.matcher.match(text, fuzzy=fuzzy, cutoff=cutoff)
            concept = match.concept if match else None
            return Route(concept, concept, 0.0, match, "aliases only")
        route = decide(found, params)
        alias = found.alias
        overrule = route.concept is not None
        narrower = alias is not None and route.concept in self._narrower.get(alias.concept, ())
        if (
            alias is not None
            and route.concept != alias.concept
            and not narrower  # "give me the gist of the novel ...": summarise_book
            and self._commands(text, found, overruling=overrule)
        ):
            # A command with its object says what is asked for in so many words; the
            # classifier only guesses it from the rest (a quoted sentence reads as a
            # translation).
            route = Route(
                alias.concept, alias.concept, found.meaning.get(alias.concept, 0.0), alias,
                route.tier, route.none,
            )  # fmt: skip
        if logger.isEnabledFor(logging.DEBUG):
            ranked = sorted(found.meaning.items(), key=lambda item: -item[1])[:3]
            logger.debug("meaning %s", ", ".join(f"{name}={value:.3f}" for name, value in ranked))
        logger.info(
            "%s concept=%s tier=%s p=%.3f none=%.3f%s",
            "routed" if route.concept else "not routed: weighed",
            route.candidate,
            route.tier,
            route.meaning,
            route.none,
            self._alias_note(route, params),
        )
        return route

    def _commands(self, text: str, found: Evidence, *, overruling: bool = False) -> bool:
        """Whether a command alias of its concept leads the request (exact or a typo).

        ``overruling``: the classifier chose another concept; then only a command whose
        object is plainly there (:meth:`_object_present`) decides, whatever the
        classifier's probability for its concept.

        Not when the alias is the subject of a sentence ("ELI5 is a subreddit", "tldr
        is slang") nor when the classifier finds its concept all but impossible
        (:data:`COMMAND_FLOOR`: "Eli5 Manning stats") and its object is not plainly there
        (:meth:`_object_present`: "eli5 why is the sky blue?", "TL;DR of the thread
        above"). A command before what its concept cannot act on never gets here
        (:meth:`_question_after`).
        """
        found_alias = found.alias
        if found_alias is None:
            return False
        alias = self._command_leads(text, found_alias, found.leads)
        if alias is None:
            return False
        rest = following(text, alias)
        if _NAMED.search(rest):
            return False
        if self._object_present(alias, rest):
            return True
        return not overruling and found.meaning.get(alias.concept, 0.0) >= COMMAND_FLOOR

    def _object_present(self, command: AliasMatch, rest: str) -> bool:
        """Whether what follows a leading ``command`` plainly is what it acts on.

        The classifier reads little in a command and its object ("eli5 why is the sky
        blue?": explain_simply 0.024); the shape of what follows says more. With a
        ``command_object``, what it names plainly (:meth:`CommandObject.present`: nothing,
        a text named, a passage); a question of the user's own is no object there. A
        command that takes anything takes plainly: nothing; what follows a colon or a
        dash ("reword: ..."); a quoted text ('reword "hello there"'); a question opened
        by one of the file's ``question_words`` ("eli5 how do vaccines work?"); with
        ``command_sentence``, a sentence of :data:`SENTENCE_WORDS` words or more ending in
        ". ! ?" ("reword Their going too the store."). Not a bare name or topic ("Eli5
        Manning stats").

        Args:
            command: A command of its concept, leading the request.
            rest: What follows it in the message (folded).
        """
        wanted = self.concept(command.concept).command_object
        if wanted is not None:
            return wanted.present(rest)
        tokens = normalise(rest)
        if not tokens or _SEPARATOR.match(rest):
            return True
        if _quoted_spans(rest) == [(len(rest) - len(rest.lstrip()), len(rest.rstrip()))]:
            return True  # a quoted text and nothing else: 'reword "hello there my friend"'
        ends = rest.rstrip().rstrip(_CLOSING_QUOTES)  # 'reword "Their going too the store."'
        if ends.endswith(_QUESTION_MARKS) and tokens[0] in self.file.question_words:
            return True
        sentence = len(tokens) >= SENTENCE_WORDS and ends.endswith((".", "!", *_QUESTION_MARKS))
        return sentence and self.concept(command.concept).command_sentence

    def _command_leads(self, text: str, alias: AliasMatch, leads: bool) -> AliasMatch | None:
        """``alias`` if it is a command of its concept and leads the request in ``text``.

        A command leads where any alias does (``leads``: "please ELI5 DNS") and also
        where it is asked for as a thing, after the file's ``command_lead_in`` words
        ("give me a tl;dr of the meeting", "can I get a quick ELI5 of DNS").
        """
        commands = {tuple(normalise(c)) for c in self.concept(alias.concept).commands}
        if tuple(normalise(alias.alias)) not in commands:
            return None
        if leads:
            return alias
        params = self.file.params
        lead_in = (params.lead_in if params else frozenset()) | self.file.command_lead_in
        return alias if alias.position in lead_positions(text, lead_in) else None

    def _question_after(self, text: str, alias: AliasMatch | None, leads: bool) -> str | None:
        """What follows a leading command that cannot act on it, else None.

        A concept's ``command_object`` says what its commands act on: "TLDR; the meeting
        is at 5, where is it?" holds no text to summarise, only the user's own TL;DR
        marker before a question of theirs (see :class:`CommandObject`).

        Returns:
            What follows the command, from its first letter or digit; None when no
            command leads, its concept takes anything, or what follows is its object.
        """
        command = None if alias is None else self._command_leads(text, alias, leads)
        if command is None:
            return None
        wanted = self.concept(command.concept).command_object
        rest = following(text, command)
        if wanted is None or wanted.accepts(rest):
            return None
        logger.info(
            "not %s: its command %r leads a question of its own, routed alone",
            command.concept,
            command.alias,
        )
        return _LEADING_PUNCTUATION.sub("", rest)

    def _alias_note(self, route: Route, params: RoutingParams) -> str:
        """For the log: the alias found and the log-odds it gave its concept."""
        alias = route.alias
        if alias is None:
            return ""
        note = f" alias={alias.alias!r}"
        classifier = self._classifier_if_fitted(params)
        if classifier is not None and alias.concept in self.names:
            index = self.names.index(alias.concept)
            column = index if route.tier == "lead" else len(self.names) + index
            weights = classifier.weights[:, -2 * len(self.names) + column]  # alias columns last
            effect = (weights[index] - weights[-1]) * params.alias_weight
            note += f" ({effect:+.1f} log-odds for {alias.concept} over none)"
        return note

    def _features(
        self,
        vectors: Any,
        texts: Sequence[str],
        aliases: Sequence[tuple[AliasMatch | None, bool]],
    ) -> Any:
        """Classifier features ``(n, d + V + 2C)`` of embedded texts.

        The embedding, the word features, then the alias evidence (last:
        :meth:`_alias_note` counts from the end).
        """
        import numpy as np

        params = self.file.params
        weight = params.alias_weight if params else 0.0
        lexical = params.lexical_weight if params else 0.0
        words = np.stack([self.lexical_features(text, lexical) for text in texts])
        found = np.stack([self.alias_features(alias, leads, weight) for alias, leads in aliases])
        return np.hstack([np.atleast_2d(vectors), words, found])

    def _meaning(
        self, text: str, vector: Sequence[float] | None, alias: AliasMatch | None, leads: bool
    ) -> tuple[dict[str, float], float]:
        """Per concept, the classifier's probability for ``text``; and none's."""
        if not self.by_meaning or not text.strip():
            return {}, -1.0
        import numpy as np

        assert self._embeddings is not None
        try:
            classifier = self._classifier()
            # A typo of an alias is read as the alias, words and meaning: "Expalin like I'm
            # five: DNS" weighs what "explain like i'm five: dns" weighs (one more embedding,
            # only when fuzzy matching found a typo).
            read = text
            if alias is not None and alias.kind == "fuzzy":
                read, vector = corrected(text, alias), None
            query = np.asarray(
                self._embeddings.embed_query(read) if vector is None else vector,
                dtype=np.float32,
            )
        except Exception as exc:  # no model: route by aliases, as before, and say so once
            with self._lock:
                if not self._failed:
                    logger.warning("routing by aliases only: the embedding model failed: %s", exc)
                self._failed = True
            return {}, -1.0
        probabilities = classifier.probabilities(
            self._features(_normalised(query), [read], [(alias, leads)])
        )[0]
        meaning = {n: float(p) for n, p in zip(self.names, probabilities, strict=False)}
        return meaning, float(probabilities[-1])

    def training_set(self) -> tuple[tuple[str, ...], Any, Any]:
        """The examples, then the ordinary requests: texts, features and class indices.

        Class ``j`` is ``names[j]``; ``len(names)`` is none. Alias features are found as
        for a message (exact matching).

        Raises:
            ValueError: The router has no embedding model.
            Whatever the embedding model raises.
        """
        import numpy as np

        if self._embeddings is None:
            raise ValueError("routing by meaning needs examples, routing numbers and a model")
        texts = (*self.texts, *self.file.no_concept)
        vectors = np.vstack(
            [
                embed_examples(self._embeddings, self.texts),
                embed_examples(self._embeddings, self.file.no_concept),
            ]
        )
        features = self._features(vectors, texts, [self.deciding_alias(t) for t in texts])
        labels = np.asarray([*self.owner, *[len(self.names)] * len(self.file.no_concept)])
        return texts, features, labels

    def _key(self, params: RoutingParams) -> tuple[str, str, float, float, float]:
        assert self._embeddings is not None
        key = _model_key(self._embeddings)
        return (
            key,
            self._digest,
            params.regularisation,
            params.alias_weight,
            params.lexical_weight,
        )

    def _classifier_if_fitted(self, params: RoutingParams) -> Classifier | None:
        if self._embeddings is None:
            return None
        with _EXAMPLE_LOCK:
            return _CLASSIFIERS.get(self._key(params))

    def _classifier(self) -> Classifier:
        """The classifier over the file's examples, fitted once per process.

        Raises:
            Whatever the embedding model raises.
        """
        params = self.file.params
        assert params is not None
        found = self._classifier_if_fitted(params)
        if found is not None:
            return found
        path = self._cache_path(params)
        classifier = Classifier.load(path) if path is not None else None
        if classifier is None:
            _, features, labels = self.training_set()
            classifier = fit_classifier(
                features, labels, len(self.names) + 1, params.regularisation
            )
            if path is not None:
                classifier.save(path)
        with _EXAMPLE_LOCK:
            _CLASSIFIERS[self._key(params)] = classifier
        return classifier

    def _cache_path(self, params: RoutingParams) -> Path | None:
        if self.cache_dir is None:
            return None
        # Everything the weights depend on: model, examples, numbers, feature layout.
        key = repr((*self._key(params), FEATURES_VERSION, len(self.names)))
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.cache_dir / "routing" / f"classifier-{digest}.npz"


def narrower_concepts(concepts: Mapping[str, Concept]) -> dict[str, frozenset[str]]:
    """Per concept, the concepts that ask for a narrower kind of it.

    A concept is narrower when one of its aliases extends one of the other's by more words:
    "summarise the novel" (summarise_book) of "summarise" (summarise), "compare it to
    something" (analogy) of "compare". A command of the broad concept does not overrule
    the classifier's choice of a narrower one ("give me the gist of the novel Brave New
    World" is a book summary); the classifier tells the two kinds apart.

    Args:
        concepts: The concepts by name.

    Returns:
        Broad concept name -> names of its narrower concepts (only concepts that have one).
    """
    found: dict[str, set[str]] = {}
    for broad in concepts.values():
        heads = {tuple(normalise(alias)) for alias in broad.aliases}
        for narrow in concepts.values():
            if narrow.name == broad.name:
                continue
            for alias in narrow.aliases:
                words = tuple(normalise(alias))
                if any(len(words) > len(head) and words[: len(head)] == head for head in heads):
                    found.setdefault(broad.name, set()).add(narrow.name)
                    break
    return {name: frozenset(names) for name, names in found.items()}


def _tier(evidence: Evidence) -> Tier:
    if evidence.alias is None:
        return "meaning"
    return "lead" if evidence.leads else "alias"


COMMAND_FLOOR = 0.03
"""The classifier's probability a command's concept needs for the command to route.

Set by hand (2026-11-30) between the commands of the alias forms of
``tests/unit/test_routing_meaning.py`` (lowest: "Can you ELI5 DNS?", 0.043) and requests
that only start with such a word ("tl;dr: I lost my job. What should I do...", 0.006;
"Eli5 Manning stats", 0.011); not calibrated. A command whose object is plainly there
passes it whatever the classifier says (:meth:`ConceptRouter._object_present`): the
floor is for what has no structural check, a bare name or topic after the command."""

SENTENCE_WORDS = 3
"""Words a sentence after a command needs to be its object (``command_sentence``): "Their
going too the store." is one, "Manning stats?" is none."""

# Quote marks that may close a sentence after its end mark ('"... the store."'); fold() has
# made curly quotes straight.
_CLOSING_QUOTES = "\"'`"
# What separates a command from what follows ("TLDR; the meeting...", "tl;dr - ...").
_LEADING_PUNCTUATION = re.compile(r"^[\W_]+")
# A command set apart from its object, as an instruction is: "reword: ...", "ELI5 - ...".
_SEPARATOR = re.compile(r"^\s*(?::|\s-+\s|\s[\u2013\u2014]\s)")

# The alias spoken of, not used: "ELI5 is a subreddit", "Proofread is a word".
_NAMED = re.compile(
    r"^\W*(?:is|was|are|were|means|meant|stands|isn'?t|has|had|sounds|comes)\b", re.IGNORECASE
)


def decide(evidence: Evidence, params: RoutingParams) -> Route:
    """Choose from the classifier's probabilities in ``evidence``.

    Args:
        evidence: What :meth:`ConceptRouter.evidence` found (with probabilities).
        params: The calibrated numbers.

    Returns:
        The most probable concept when it is more probable than none and reaches
        ``params.threshold``; else a route to no concept, naming it as the candidate.
    """
    meaning, none = evidence.meaning, evidence.none
    if not meaning:
        return Route(None, None, 0.0, evidence.alias, _tier(evidence), none)
    best = max(meaning, key=lambda name: meaning[name])  # file order breaks ties
    score = meaning[best]
    chosen = best if score > none and score >= params.threshold else None
    return Route(chosen, best, score, evidence.alias, _tier(evidence), none)


# --- calibration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found.

    Attributes:
        params: The best routing numbers on the grid (``lead_in`` kept from the file).
        correct: Examples decided right with them, each by a classifier fitted without it.
        total: Examples scored (concept examples and ordinary requests).
        per_tier: Per kind of alias evidence: (examples, decided right).
        mistakes: (example, expected concept or None, chosen concept or None).
    """

    params: RoutingParams
    correct: int
    total: int
    per_tier: Mapping[str, tuple[int, int]]
    mistakes: tuple[tuple[str, str | None, str | None], ...]


THRESHOLD_GRID: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6)
"""Probabilities tried for ``threshold``."""

REGULARISATION_GRID: tuple[float, ...] = (4.0, 16.0, 64.0)
"""Values tried for ``regularisation`` (scikit-learn's ``C``)."""

ALIAS_WEIGHT_GRID: tuple[float, ...] = (0.0, 0.5, 1.0)
"""Values tried for ``alias_weight``."""

LEXICAL_WEIGHT_GRID: tuple[float, ...] = (0.0, 1.0)
"""Values tried for ``lexical_weight``: without words, or a word vector of the length of
the (unit) embedding, so that ``regularisation`` alone sets how much each view is used.
Finer steps (0.5, 2) moved the choice from run to run by a few examples in 930, within
the noise of one cross-validation."""

FOLDS = 10
"""Cross-validation folds (fewer when a class has fewer examples)."""


def cross_validated(
    router: ConceptRouter, params: RoutingParams
) -> list[tuple[str, str | None, Evidence]]:
    """Every example of the file with the evidence a classifier fitted without it gives.

    The examples and ordinary requests are split into :data:`FOLDS` stratified folds
    (shuffled with a fixed seed: the result is reproducible); each fold is scored by a
    classifier fitted on the others, with ``params``' regularisation and alias weight.

    Returns:
        (example, its concept or None for an ordinary request, evidence), in file order.

    Raises:
        ValueError: The router has no embedding model, or a class has a single example.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    router = ConceptRouter(dataclasses.replace(router.file, params=params), router.embeddings)
    texts, features, labels = router.training_set()
    classes = len(router.names) + 1
    folds = min(FOLDS, int(np.bincount(labels, minlength=classes).min()))
    if folds < 2:
        raise ValueError("calibration needs at least two examples per concept and of none")
    probabilities = np.zeros((len(texts), classes))
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(features, labels)
    for train, test in splits:
        fitted = fit_classifier(features[train], labels[train], classes, params.regularisation)
        probabilities[test] = fitted.probabilities(features[test])
    cases: list[tuple[str, str | None, Evidence]] = []
    for text, label, row in zip(texts, labels, probabilities, strict=True):
        alias, leads = router.deciding_alias(text)
        meaning = {n: float(p) for n, p in zip(router.names, row, strict=False)}
        expected = router.names[label] if label < len(router.names) else None
        cases.append((text, expected, Evidence(meaning, alias, leads, float(row[-1]))))
    return cases


def calibrate(router: ConceptRouter) -> Calibration:
    """The routing numbers that decide the file's own examples best, cross-validated.

    Every combination of :data:`REGULARISATION_GRID`, :data:`ALIAS_WEIGHT_GRID` and
    :data:`LEXICAL_WEIGHT_GRID` is cross-validated (:func:`cross_validated`) and every
    :data:`THRESHOLD_GRID` value tried on its probabilities; the most examples decided
    right win (the first on the grids among equals: weaker fitting, lighter aliases and
    words, lower threshold). The word columns are those of the whole file (a term seen
    in two texts, one of them left out, keeps its column): a small optimism.

    Args:
        router: A router with examples, ordinary requests and an embedding model.

    Returns:
        The numbers, how many examples they decide right, per tier, and the mistakes.

    Raises:
        ValueError: The router cannot be calibrated (no model, or too few examples).
    """
    if router.embeddings is None or router.file.params is None:
        raise ValueError("calibration needs examples, routing numbers and a model")
    lead_in = router.file.params.lead_in
    best: tuple[int, RoutingParams, list[tuple[str, str | None, Evidence]]] | None = None
    grid = itertools.product(REGULARISATION_GRID, ALIAS_WEIGHT_GRID, LEXICAL_WEIGHT_GRID)
    for regularisation, weight, lexical in grid:
        fitted = RoutingParams(THRESHOLD_GRID[0], lead_in, regularisation, weight, lexical)
        cases = cross_validated(router, fitted)
        for threshold in THRESHOLD_GRID:
            params = dataclasses.replace(fitted, threshold=threshold)
            right = sum(decide(ev, params).concept == want for _, want, ev in cases)
            if best is None or right > best[0]:
                best = (right, params, cases)
    assert best is not None
    _, params, cases = best
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
