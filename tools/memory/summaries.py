"""The running summary: what the summariser is asked, and whether its answer can be used.

A small model asked to summarise sometimes answers with nothing, with a placeholder it saw
in the request ("(empty)"), with the request itself, or with a fluent summary that has
lost the user's name. :func:`summary_problem` catches each of these; the summarise node
then asks once more, naming what was missing, and as a last resort keeps the user's own
sentences (:func:`extractive_summary`), so a name or a number said in a folded turn is
not lost; the check covers the names and numbers of the summary so far as well, so a
later summary cannot quietly drop what an earlier one kept.

The summary has a token budget (``summarisation.max_summary_tokens``) whoever writes it;
the model's is cut by ``max_new_tokens``, the extractive one by :func:`fit_summary`. When
it must lose detail to fit, it does so in steps, oldest first, and says so: sentences
are first made terse (function words out: "Person1 Smith, code 1111"), then reduced to
their names and numbers on one "Key facts:" line, and only then are the oldest names and
numbers left out, counted in a marker line. The folded turns themselves stay in the
thread's checkpoint, whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from tools.memory.facts import (
    as_term,
    key_terms,
    missing_terms,
    self_statements,
    without_filler,
    written_terms,
)
from tools.prompting import Counter, Turn

# What a model writes when it means "nothing" (or copies a placeholder).
_PLACEHOLDER = re.compile(
    r"^[\s(\[*_\"']*(?:empty|none|n/?a|nothing|no summary|no facts|null|tbd|\.\.\.|…)?"
    r"[\s)\]*_\"'.]*$",
    re.IGNORECASE,
)
# Headings of our own request; a reply that contains them copied the request.
_REQUEST_HEADINGS = ("Summary so far:", "New lines of the conversation:", "Conversation:")
_TRANSCRIPT_LINE = re.compile(r"^\s*(?:User|Assistant)\s*:", re.MULTILINE)
_SHOWN_MISSING = 12  # names in a problem's description; the retry asks for all of them
_LEAD_IN = re.compile(r"^\s*(?:\*\*)?(?:updated |new )?summary(?:\*\*)?\s*:\s*", re.IGNORECASE)


def transcript(turns: Sequence[Turn]) -> str:
    """The turns as plain "User:/Assistant:" lines (only ever shown to the summariser)."""
    names = {"human": "User", "ai": "Assistant"}
    return "\n".join(f"{names[m.type]}: {m.text}" for turn in turns for m in turn.messages)


def summary_request(previous: str, turns: Sequence[Turn], missing: Sequence[str] = ()) -> str:
    """The user message that asks for the updated summary.

    There is no placeholder for "no summary yet": a model copies placeholders back.

    Args:
        previous: The summary so far ("" before the first).
        turns: The turns to fold in, oldest first.
        missing: Names and numbers an earlier attempt left out (asked for explicitly).
    """
    lines = transcript(turns)
    if previous:
        request = (
            f"Summary so far:\n{previous}\n\nNew lines of the conversation:\n{lines}\n\n"
            "Write the updated summary."
        )
    else:
        request = f"Conversation:\n{lines}\n\nWrite the summary."
    if missing:
        request += " It must mention: " + ", ".join(missing) + "."
    return request


def user_facts(turns: Sequence[Turn]) -> list[str]:
    """What the user said about themselves in ``turns``, sentence by sentence, in order."""
    return [
        s
        for turn in turns
        for m in turn.messages
        if m.type == "human"
        for s in self_statements(m.text)
    ]


def required_terms(turns: Sequence[Turn]) -> set[str]:
    """Names and numbers the user stated about themselves in ``turns``: a summary keeps them."""
    return {term for fact in user_facts(turns) for term in key_terms(fact)}


def tidy(text: str, *, truncated: bool = False) -> str:
    """The summariser's reply without a "Summary:" lead-in.

    When it ran out of tokens (``truncated``), it is cut to its last whole sentence.
    """
    text = _LEAD_IN.sub("", text.strip()).strip()
    if truncated and not text.endswith((".", "!", "?")):
        end = max(text.rfind(". "), text.rfind(".\n"))
        text = text[: end + 1] if end > 0 else text
    return text.strip()


def summary_problem(
    candidate: str, *, turns: Sequence[Turn], request: str, previous: str = ""
) -> str | None:
    """Why ``candidate`` cannot be the new summary, or None if it can.

    Checks, in order: not empty, not a placeholder, not a copy of the request (its
    headings or "User:"/"Assistant:" lines, or as long as the lines it summarises), and
    keeps every name and number the user stated about themselves in ``turns`` and every
    one the ``previous`` summary held (:func:`summary_terms`).
    """
    if not candidate.strip():
        return "it is empty"
    if _PLACEHOLDER.match(candidate):
        return f"it is a placeholder ({candidate.strip()[:20]!r})"
    if any(h in candidate for h in _REQUEST_HEADINGS) or _TRANSCRIPT_LINE.search(candidate):
        return "it copies the request"
    if candidate.strip() in request and len(candidate.strip()) > 0.8 * len(transcript(turns)):
        return "it copies the request"
    missing = missing_terms(required_terms(turns) | summary_terms(previous), candidate)
    if missing:
        shown = ", ".join(missing[:_SHOWN_MISSING])
        more = len(missing) - _SHOWN_MISSING
        return f"it leaves out {shown}" + (f" and {more} more" if more > 0 else "")
    return None


# How the extractive summary writes its lines (and reads them back from the summary so far).
_SAID = 'The user said: "'
_SAID_RUN = re.compile(r'The user said: "(.*?)"(?=\s+The user said: "|\s*$)')
_TERSE_HEAD = "About the user, in short:"
_KEY_FACTS_HEAD = "Key facts:"
_LEFT_OUT = re.compile(r"^\((\d+) older details? left out\.\)$")
# Words a terse sentence can do without. Not a general stop-word list: negations ("not",
# "never", "can't", "don't") and prepositions stay, or "I can't eat nuts" would turn
# into "eat nuts".
_FUNCTION_WORDS = frozenset({
    "i", "i'm", "im", "i've", "am", "is", "are", "was", "were", "be", "been", "being", "my",
    "our", "me", "mine", "the", "a", "an", "this", "that", "these", "those", "really", "very",
    "just", "also", "so", "actually", "currently", "called", "named",
})  # fmt: skip
_TERSE, _TERMS = 1, 2  # detail levels below "as written" (0)


@dataclass
class _Part:
    """One sentence of a summary, oldest first, at the detail it is shown with."""

    text: str
    """The sentence as written, or its terse form when it was read back terse."""
    said: bool = False
    """The user's own words (shown quoted after "The user said:")."""
    level: int = 0
    """0 as written, 1 terse, 2 only its names and numbers."""
    terms: list[str] = field(default_factory=list)
    """Level 2: the names and numbers kept, as written."""

    def names(self) -> list[str]:
        """The names and numbers this part shows, as written."""
        if self.level == _TERMS:
            return self.terms
        return list(_written(self.text, self.level == _TERSE))


@lru_cache(maxsize=1024)
def _written(text: str, loose: bool) -> tuple[str, ...]:
    # Fitting asks for the same sentences' terms at every step.
    return tuple(written_terms(text, loose=loose))


@dataclass(frozen=True)
class FittedSummary:
    """A summary within its budget, and what was given up to get there."""

    text: str
    tokens: int
    shortened: int = 0
    """Sentences made terse or reduced to their names and numbers by this fit."""
    left_out: int = 0
    """Details left out by this fit (names, numbers, sentences that had neither)."""


def terse(sentence: str) -> str:
    """``sentence`` without its filler and function words ("Person1 Smith, code 1111").

    Every name and number stays; the first word is lower-cased unless it is a name, so
    that in the terse text every capitalised word is a name.
    """
    names = {t.lower() for t in written_terms(sentence)}
    text = without_filler(sentence).replace('"', "").replace(";", ",")
    text = re.sub(
        r"[\w'-]+", lambda m: "" if m.group(0).lower() in _FUNCTION_WORDS else m.group(0), text
    )
    text = re.sub(r"\s+([,.!:])", r"\1", " ".join(text.split()))
    text = re.sub(r"([,:])(?:\s*[,:])+", r"\1", text).strip(" ,.:!-")
    first = text.split(" ", 1)[0]
    if first and first.lower().rstrip(",") not in names:
        text = first.lower() + text[len(first) :]
    return text


def _read(summary: str) -> tuple[list[_Part], int]:
    """The parts of a summary (ours or the model's) and the count of details left out."""
    parts: list[_Part] = []
    left_out = 0
    for line in (ln.strip() for ln in summary.splitlines()):
        marker = _LEFT_OUT.match(line)
        if marker:
            left_out += int(marker.group(1))
        elif line.startswith(_KEY_FACTS_HEAD):
            terms = [t.strip() for t in line.removeprefix(_KEY_FACTS_HEAD).split(",")]
            parts.append(_Part("", level=_TERMS, terms=[t for t in terms if t]))
        elif line.startswith(_TERSE_HEAD):
            items = line.removeprefix(_TERSE_HEAD).strip().removesuffix(".").split("; ")
            parts += [_Part(i.strip(), level=_TERSE) for i in items if i.strip()]
        elif line.startswith(_SAID) and _SAID_RUN.search(line):
            parts += [_Part(m.group(1), said=True) for m in _SAID_RUN.finditer(line)]
        elif line:
            parts += [_Part(s) for s in sentences_of(line)]
    return parts, left_out


def sentences_of(text: str) -> list[str]:
    """The sentences of a summary's line of prose."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


@dataclass(frozen=True)
class _Layout:
    """The summary's lines, top to bottom: marker, key facts, terse sentences, the rest."""

    marker: str
    terms: list[str]
    short: list[str]
    full: list[str]

    def lines(self) -> list[str]:
        """The lines of the summary's text."""
        lines = [self.marker] if self.marker else []
        if self.terms:
            lines.append(f"{_KEY_FACTS_HEAD} {', '.join(self.terms)}")
        if self.short:
            lines.append(f"{_TERSE_HEAD} {'; '.join(self.short)}.")
        return lines + self.full

    def estimate(self, count: Counter) -> int:
        """Tokens of the text, counted item by item; the seams may differ by a token or so.

        A caching counter tokenises each item once, however often fitting asks.
        """
        size = count(self.marker) if self.marker else 0
        if self.terms:
            size += count(_KEY_FACTS_HEAD) + sum(count(t) + 1 for t in self.terms)
        if self.short:
            size += count(_TERSE_HEAD) + sum(count(t) + 1 for t in self.short)
        size += sum(count(line) for line in self.full)
        return size + len(self.lines()) - 1


def _layout(parts: Sequence[_Part], left_out: int) -> _Layout:
    """How ``parts`` are shown; a name or number shown in a sentence is not repeated."""
    shown = {t.lower() for p in parts if p.level < _TERMS for t in p.names()}
    terms: list[str] = []
    for part in parts:
        for term in part.names() if part.level == _TERMS else ():
            if term.lower() not in shown:
                shown.add(term.lower())
                terms.append(term)
    # Short: on a small budget every token of the marker is a name or number less.
    plural = "s" if left_out != 1 else ""
    marker = f"({left_out} older detail{plural} left out.)" if left_out else ""
    return _Layout(
        marker=marker,
        terms=terms,
        short=[p.text for p in parts if p.level == _TERSE and p.text],
        full=[f'{_SAID}{p.text}"' if p.said else p.text for p in parts if p.level == 0],
    )


def details_left_out(summary: str) -> int:
    """How many details the summary's marker says were left out to fit (0 without one)."""
    return _read(summary)[1]


def summary_terms(summary: str) -> set[str]:
    """The names and numbers a summary holds (lower-cased): a later summary keeps them.

    The marker of what was left out does not count (its number is not the user's).
    """
    parts, _ = _read(summary)
    return {t for p in parts for t in _plain(p)}


def _plain(part: _Part) -> set[str]:
    """The part's names and numbers as terms: lower-cased, numbers in canonical form."""
    return {as_term(t) for t in part.names()}


def fit_summary(summary: str, budget: int, count: Counter) -> FittedSummary:
    """``summary`` within ``budget`` tokens, losing detail oldest first, visibly.

    Steps, each oldest sentence first, each only while the summary is over budget:
    sentences made terse (:func:`terse`); sentences reduced to their names and numbers
    (one "Key facts:" line); then the oldest names and numbers left out, counted in a
    marker line ("(12 older details left out.)"). A summary already within the
    budget comes back as it is.

    Args:
        summary: A summary written by the model or by :func:`extractive_summary`.
        budget: Tokens the summary may take (as ``count`` counts them).
        count: The model's token counter.

    Returns:
        The fitted summary; its text is "" when not even the marker fits.
    """
    tokens = count(summary) if summary else 0
    if tokens <= budget:
        return FittedSummary(summary, tokens)
    parts, left_out = _read(summary)
    return _fit(parts, left_out, budget, count)


def _fit(parts: list[_Part], left_out: int, budget: int, count: Counter) -> FittedSummary:
    """Shorten ``parts`` (oldest first) until their lines fit ``budget``; see fit_summary."""

    def size() -> int:
        return _layout(parts, left_out).estimate(count)

    before = left_out
    shortened: set[int] = set()

    def give_up_some() -> bool:
        """Take the next step down (see fit_summary); False when nothing is left to give."""
        nonlocal left_out
        for level in (_TERSE, _TERMS):
            for index, part in enumerate(parts):
                if part.level >= level:
                    continue
                if level == _TERSE:
                    parts[index] = replace(part, text=terse(part.text), level=_TERSE)
                else:
                    parts[index] = replace(part, level=_TERMS, terms=part.names())
                    left_out += 0 if part.names() else 1  # nothing of it is left
                shortened.add(index)
                return True
        oldest = next((p for p in parts if p.level == _TERMS and p.terms), None)
        if oldest is None:
            return False
        # Left out only when no newer part shows the same name or number.
        term = oldest.terms.pop(0).lower()
        if not any(term in {t.lower() for t in p.names()} for p in parts):
            left_out += 1
        return True

    while True:
        if size() <= budget:  # cheap first, then the whole text once
            text = "\n".join(_layout(parts, left_out).lines())
            tokens = count(text) if text else 0
            if tokens <= budget:
                return FittedSummary(text, tokens, len(shortened), left_out - before)
        if not give_up_some():  # not even the marker fits
            return FittedSummary("", 0, len(shortened), left_out - before)


def extractive_summary(
    previous: str, turns: Sequence[Turn], *, budget: int, count: Counter
) -> FittedSummary:
    """A summary made without the model: the summary so far and the user's own statements.

    Used when the summariser's answers fail :func:`summary_problem`. The user's
    statements are kept in their words, after the summary so far; one said again moves
    to the end (it is recent again). When the whole is over ``budget`` tokens it is
    shortened by :func:`fit_summary` (oldest detail first, counted in a marker).

    Args:
        previous: The summary so far ("" before the first).
        turns: The turns folded now, oldest first.
        budget: Tokens the summary may take.
        count: The model's token counter.
    """
    parts, left_out = _read(previous)
    for fact in user_facts(turns):
        same = " ".join(fact.casefold().split())
        parts = [p for p in parts if " ".join(p.text.casefold().split()) != same]
        parts.append(_Part(fact, said=True))
    return _fit(parts, left_out, budget, count)
