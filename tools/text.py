"""Text shared by the tools: folding user text for matching, and reading data files.

Alias routing (:mod:`tools.routing`) and the safety filter (:mod:`tools.guardrails`) both
compare what a user typed with lists written in plain lower-case ASCII, so both fold the
text first. They share the pieces below and compose them differently, on purpose:

* :func:`fold` (routing): straight quotes (a backtick or an acute accent typed for an
  apostrophe counts as one), NFKC, then ``casefold`` ("Straße" -> "strasse"). Routing only
  needs tokens, so the whole text is folded at once.
* :func:`fold_with_offsets` (safety filter): invisible characters (:func:`is_invisible`,
  the same class :func:`is_blank` counts as empty) dropped, straight quotes,
  NFKC, ``lower``, accents off ("fück" -> "fuck"), character by character, with the
  index of the original character behind every folded one, because the filter masks
  words in the original reply. The backtick stays: in replies it marks code.

The two recipes differ where their results differ today; aligning them would change what
routes and what is blocked, so it is left for a change that means to.

Courtesy: :func:`is_phatic` and :func:`is_courtesy` tell a message that only thanks,
greets or acknowledges ("ok thanks", "yes", "bye!"), which retrieval does not search for
and the input check does not send to the model.

Shortening: :func:`shorten` cuts a text to a length between two grapheme clusters, so a
flag, an emoji with its skin tone, a ZWJ family, a keycap or a letter with its accents is
never split; every place that shortens text for a prompt, a report or the page uses it.

Word lists: :func:`english_word_frequencies` is wordfreq's large English list, loaded
once for whichever tool needs to know how much English uses a word.

The file half: :func:`parse_yaml` reads YAML with duplicate keys as errors, and
:func:`describe_validation_error` turns a pydantic error into one line that names each
offending entry and field, in the words of the file's own format.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Hashable, Mapping
from functools import lru_cache
from typing import Any, Final

import regex
import yaml
from pydantic import ValidationError

__all__ = [
    "APOSTROPHE_LOOKALIKES",
    "GRAPHEME",
    "QUOTES",
    "Location",
    "UniqueKeyLoader",
    "describe_validation_error",
    "fold",
    "fold_char",
    "fold_with_offsets",
    "is_blank",
    "is_courtesy",
    "is_invisible",
    "is_phatic",
    "parse_yaml",
    "shorten",
    "straighten_quotes",
    "strip_accents",
    "validation_error_line",
]

# --- folding --------------------------------------------------------------------------

# Typographic quotes and primes, folded to ASCII before NFKC (which leaves them alone).
# U+FF07 (fullwidth apostrophe) would become "'" under NFKC anyway; listing it keeps the
# table complete for callers that skip NFKC.
QUOTES: Final[Mapping[str, str]] = {
    "\u2018": "'",  # LEFT SINGLE QUOTATION MARK
    "\u2019": "'",  # RIGHT SINGLE QUOTATION MARK
    "\u201a": "'",  # SINGLE LOW-9 QUOTATION MARK
    "\u201b": "'",  # SINGLE HIGH-REVERSED-9 QUOTATION MARK
    "\u2032": "'",  # PRIME
    "\u02bc": "'",  # MODIFIER LETTER APOSTROPHE
    "\uff07": "'",  # FULLWIDTH APOSTROPHE
    "\u201c": '"',  # LEFT DOUBLE QUOTATION MARK
    "\u201d": '"',  # RIGHT DOUBLE QUOTATION MARK
    "\u201e": '"',  # DOUBLE LOW-9 QUOTATION MARK
    "\u201f": '"',  # DOUBLE HIGH-REVERSED-9 QUOTATION MARK
    "\u2033": '"',  # DOUBLE PRIME
}
# Typed for an apostrophe ("I`m", "I´m") but not quotes: routing reads them as one, the
# safety filter does not (a backtick in a reply is markdown code).
APOSTROPHE_LOOKALIKES: Final[Mapping[str, str]] = {
    "`": "'",  # GRAVE ACCENT
    "\u00b4": "'",  # ACUTE ACCENT
}
# Code points that show nothing though they are not format characters (category Cf),
# control characters (Cc) or whitespace: variation selectors, the Mongolian ones, the
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, the blank Braille
# pattern.
_BLANK_RANGES: Final[tuple[tuple[int, int], ...]] = (
    (0x034F, 0x034F),  # COMBINING GRAPHEME JOINER
    (0x115F, 0x1160),  # HANGUL CHOSEONG / JUNGSEONG FILLER
    (0x17B4, 0x17B5),  # KHMER VOWEL INHERENT AQ / AA
    (0x180B, 0x180F),  # MONGOLIAN FREE VARIATION SELECTORS (and vowel separator)
    (0x2800, 0x2800),  # BRAILLE PATTERN BLANK
    (0x3164, 0x3164),  # HANGUL FILLER
    (0xFE00, 0xFE0F),  # VARIATION SELECTORS 1-16
    (0xFFA0, 0xFFA0),  # HALFWIDTH HANGUL FILLER
    (0xE0100, 0xE01EF),  # VARIATION SELECTORS 17-256
)
# The control characters that lay text out (tab, line feed, vertical tab, form feed,
# carriage return): whitespace, which separates words. Every other one draws nothing.
_LAYOUT_CONTROLS: Final[frozenset[str]] = frozenset("\t\n\v\f\r")


@lru_cache(maxsize=4096)
def is_invisible(char: str) -> bool:
    """Whether a character draws nothing and is no whitespace.

    The one definition of "invisible" for the whole project: :func:`is_blank` calls a
    message of only these and whitespace empty, and :func:`fold_char` drops them, so a
    word split by one of them ("bo\u2062mb") is still the word for every lexical check.

    Args:
        char: One character.

    Returns:
        True for a format character (Unicode category Cf: zero-width spaces and
        joiners, soft hyphen, BOM, bidi marks, invisible operators, tag characters,
        interlinear annotation marks), a control character (Cc) other than tab, line
        feed, vertical tab, form feed and carriage return (so BEL, ESC, NUL, DEL), a
        variation selector or another code point that draws nothing (Hangul fillers, the
        blank Braille pattern, the combining grapheme joiner).

    """
    category = unicodedata.category(char)
    if category == "Cf" or (category == "Cc" and char not in _LAYOUT_CONTROLS):
        return True
    point = ord(char)
    return any(low <= point <= high for low, high in _BLANK_RANGES)


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace and invisible characters, or none.

    ``str.strip`` leaves a zero-width space, a byte order mark or a BEL in place, so a
    message of nothing but those looks non-empty to it; every front end and the input
    check ask this instead, so such a message is "empty" everywhere.

    Args:
        text: Any text (lone surrogates are fine: they are visible, as errors).

    Returns:
        True when every character is whitespace or :func:`is_invisible`; also for "".
    """
    return all(char.isspace() or is_invisible(char) for char in text)


def is_utf8(text: str) -> bool:
    """Whether ``text`` is text every store and model takes: no lone surrogates.

    Bytes that are not UTF-8 (a file name from another system, an argument typed in a
    terminal of another encoding) reach Python as lone surrogates; Chroma, SQLite and
    the tokenizers cannot take them (Chroma answered "Invalid where clause", as if the
    store were broken; a tokenizer raised a TypeError).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The ASCII characters that draw nothing (controls such as NUL, BEL, ESC, DEL).
_ASCII_INVISIBLE: Final[str] = "".join(c for c in map(chr, range(0x80)) if is_invisible(c))
_ASCII_INVISIBLE_RE: Final = re.compile(f"[{re.escape(_ASCII_INVISIBLE)}]")


_QUOTE_TABLE = str.maketrans(dict(QUOTES))
_QUOTE_AND_LOOKALIKE_TABLE = str.maketrans({**QUOTES, **APOSTROPHE_LOOKALIKES})


def straighten_quotes(text: str, *, lookalikes: bool = False) -> str:
    """Replace typographic quotes with ASCII ones.

    Args:
        text: Any text.
        lookalikes: Also read a backtick or an acute accent as an apostrophe.

    Returns:
        The text, same length: each character of :data:`QUOTES` (and, if asked,
        :data:`APOSTROPHE_LOOKALIKES`) replaced by ``'`` or ``"``.

    """
    return text.translate(_QUOTE_AND_LOOKALIKE_TABLE if lookalikes else _QUOTE_TABLE)


def strip_accents(text: str) -> str:
    """Drop combining marks after NFKD decomposition ("fück" -> "fuck", "é" -> "e").

    Args:
        text: Any text.

    Returns:
        The decomposed text without its combining characters (may be shorter or longer
        than ``text``: NFKD also expands compatibility characters).

    """
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Fold text for word matching: straight quotes, NFKC, case folded.

    Backticks and acute accents count as apostrophes; accents and invisible characters
    stay (see the module docstring for why the safety filter differs).

    Args:
        text: Any text, e.g. a user message or an alias.

    Returns:
        The folded text; ``casefold`` may change its length ("ß" -> "ss").

    """
    return unicodedata.normalize("NFKC", straighten_quotes(text, lookalikes=True)).casefold()


@lru_cache(maxsize=4096)
def fold_char(char: str) -> str:
    """Fold one character the way :func:`fold_with_offsets` does.

    Invisible characters (:func:`is_invisible`) vanish; others go through straight
    quotes, NFKC, ``lower`` and :func:`strip_accents`, then straight quotes again (NFKC
    can produce one).

    Args:
        char: One character.

    Returns:
        Zero, one or several characters ("ﬁ" -> "fi", "\u200b" -> "").

    """
    if is_invisible(char):
        return ""
    text = unicodedata.normalize("NFKC", straighten_quotes(char)).lower()
    return straighten_quotes(strip_accents(text))


def fold_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """Fold text character by character, remembering where each folded character came from.

    ASCII text is only lower-cased (nothing else in the recipe applies to it), unless it
    holds control characters that draw nothing (BEL, ESC, ...), which are dropped.

    Args:
        text: Any text.

    Returns:
        The folded text and, for non-ASCII text, the index in ``text`` of each folded
        character (so ``len(index) == len(folded)``); None when the indices are the
        same (ASCII text without invisible characters).

    """
    if text.isascii() and not _ASCII_INVISIBLE_RE.search(text):
        return text.lower(), None
    parts: list[str] = []
    index: list[int] = []
    for position, char in enumerate(text):
        if char.isascii() and char not in _ASCII_INVISIBLE:
            folded = char.lower()
        else:
            folded = fold_char(char)
        parts.append(folded)
        index.extend([position] * len(folded))
    return "".join(parts), index


# --- shortening -----------------------------------------------------------------------

GRAPHEME: Final = regex.compile(r"\X", regex.DOTALL)
"""One user-perceived character (an extended grapheme cluster, UAX #29): a letter with its
combining marks, an emoji with its skin tone, a flag, a ZWJ family, a keycap, a Hangul
syllable, CR LF."""


def _clusters(text: str) -> int:
    return len(GRAPHEME.findall(text))


def shorten(text: str, limit: int, mark: str = "…", *, clusters: bool = False) -> str:
    """``text`` in at most ``limit`` characters, cut between two grapheme clusters.

    A cut never leaves half a flag, an emoji without its skin tone or a family without
    its members, a keycap without its frame, nor drops the accent of an ``e`` or the
    vowel sign of a Devanagari syllable (:data:`GRAPHEME`): the text is kept up to the
    last whole cluster that fits, then ``mark`` follows. ``text[:limit - 1] + "…"`` cut
    inside any of them.

    Args:
        text: Any text.
        limit: The most characters the result has, ``mark`` included.
        mark: What ends a text that was cut (counted in ``limit``).
        clusters: Count characters as grapheme clusters (what a reader sees) instead of
            code points (what ``len`` counts, and what bounds a prompt or a log line).

    Returns:
        ``text`` itself when it fits; else a prefix of it in whole clusters, then
        ``mark`` (only ``mark`` when not even the first cluster fits beside it).

    Raises:
        ValueError: ``limit`` leaves no room for ``mark`` (or is below 1).
    """
    measure = _clusters if clusters else len
    least = max(1, measure(mark))
    if limit < least:
        raise ValueError(f"limit must be at least {least} (room for {mark!r}), not {limit}")
    if len(text) <= limit or (clusters and measure(text) <= limit):
        return text
    room = limit - measure(mark)
    end = used = 0
    for match in GRAPHEME.finditer(text):
        used += 1 if clusters else match.end() - match.start()
        if used > room:
            break
        end = match.end()
    return text[:end] + mark


MARKS_PER_CLUSTER: Final = 4
"""Nonspacing marks a character keeps in a title (:func:`limit_marks`): Vietnamese puts
two on a letter, pointed Hebrew with cantillation three or four, Devanagari conjuncts two
viramas; "Zalgo" text stacks dozens, which draw over the lines above and below."""


def limit_marks(text: str, keep: int = MARKS_PER_CLUSTER) -> str:
    """``text`` with at most ``keep`` nonspacing marks (category Mn) per grapheme cluster.

    For one-line labels (a thread's title): a letter with 40 stacked accents is one
    cluster, so :func:`shorten` keeps all of them, and the label grows taller than its
    row. The first ``keep`` marks of each cluster stay, in order; other characters are
    untouched (spacing marks, joiners, emoji modifiers, variation selectors beyond
    ``keep`` aside).

    Args:
        text: Any text.
        keep: Marks kept per cluster (0 or more).

    Returns:
        The text, shorter by the marks dropped; itself when none is.
    """
    if not any(unicodedata.category(ch) == "Mn" for ch in text):
        return text
    parts = []
    for cluster in GRAPHEME.findall(text):
        marks = 0
        for ch in cluster:
            if unicodedata.category(ch) == "Mn":
                marks += 1
                if marks > keep:
                    continue
            parts.append(ch)
    return "".join(parts)


# --- courtesy -------------------------------------------------------------------------

_COURTESY_WORD = re.compile(r"[a-z']+")
# Thanks, greetings and acknowledgements ("ok thanks", "great, got it"): short, but they
# ask for nothing. Rewritten as follow-ups, a small model made up a query from the last
# turn ("...built in 1920 by Mira Okonkwo") and the reply came with sources.
_PHATIC: Final[frozenset[str]] = frozenset({
    "thanks", "thank", "thx", "ty", "cheers", "hi", "hello", "hey", "bye", "goodbye",
    "great", "nice", "cool", "perfect", "awesome", "excellent", "wonderful", "understood",
    "wow", "lol",
})  # fmt: skip
# Words that may come with them ("ok thanks", "got it, thank you very much"). Alone, "yes"
# or "ok" may answer the assistant's question ("Shall I look in the manual?"): a follow-up.
_PHATIC_FILLERS: Final[frozenset[str]] = frozenset({
    "ok", "okay", "k", "you", "so", "very", "much", "a", "lot", "many", "again", "got",
    "it", "that's", "thats", "all", "for", "now", "oh", "ah", "i", "see", "makes", "sense",
    "good", "fine", "sure", "yes", "yeah", "yep", "alright", "right", "morning", "evening",
    "night", "ya", "later", "there", "no", "nope",
})  # fmt: skip


def _courtesy_words(text: str) -> list[str] | None:
    """The words of a message made of courtesy words only, or None for any other message.

    Every word must be listed (:data:`_PHATIC` or :data:`_PHATIC_FILLERS`), and nothing
    else may carry meaning: no digits, no letters of another script ("hi, 价格?").
    """
    lowered = text.strip().lower()
    words = _COURTESY_WORD.findall(lowered)
    if not words or not all(w in _PHATIC or w in _PHATIC_FILLERS for w in words):
        return None
    if any(ch.isalnum() for ch in _COURTESY_WORD.sub(" ", lowered)):
        return None
    return words


def is_phatic(text: str) -> bool:
    """True when the message only thanks, greets or acknowledges ("ok thanks", "hi!").

    Such a message asks for nothing a document could answer: it is neither a follow-up to
    rewrite nor a query worth searching. A bare "yes" or "ok" is not phatic here: it may
    answer the assistant's question, so retrieval reads it as a follow-up.
    """
    words = _courtesy_words(text)
    return words is not None and any(w in _PHATIC for w in words)


def is_courtesy(text: str) -> bool:
    """True when every word of the message is a courtesy or an acknowledgement.

    What :func:`is_phatic` takes, and also a bare "yes", "ok", "no", "sure": a message
    that asks nothing by its own words, whatever it answers in the conversation. The input
    check reads only the message, so there is nothing in it for a translation or the
    judge to weigh (``"yes"`` and ``"bye"`` read as another language to the language
    identifier, and "thanks!", "ok", "sure" scored as uncertain: each cost the model a
    judge call, and a translation, before the reply).
    """
    return _courtesy_words(text) is not None


# --- word lists -----------------------------------------------------------------------

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def english_word_frequencies() -> Mapping[str, float]:
    """How often English uses each word: wordfreq's large English list, loaded once.

    wordfreq (Speer, Zenodo 10.5281/zenodo.7199437; Apache-2.0 code, CC-BY-SA 4.0 lists
    from Wikipedia, subtitles, news, books and web text) ships the list inside its wheel:
    about 321,000 words down to Zipf 1, 0.4 s to load. Shared so that each tool that
    reads it does not hold its own copy.

    Returns:
        Word (lower case, as wordfreq tokenizes: "mp3", "don't") -> uses per word of
        text; empty when wordfreq cannot be read (logged once).
    """
    try:
        from wordfreq import get_frequency_dict

        return get_frequency_dict("en", wordlist="large")
    except Exception as exc:  # a broken install: callers fall back to what they had
        log.warning("wordfreq's English list is unavailable: %s", exc)
        return {}


def zipf(frequency: float) -> float:
    """A frequency (uses per word) on wordfreq's Zipf scale: log10 of uses per billion.

    0 for a word the list does not hold. Zipf 3 is once per million words ("recipe"),
    2 once per ten million ("ransomware" 2.7, "keylogger" 2.0).
    """
    return math.log10(frequency * 1e9) if frequency > 0 else 0.0


# --- data files -----------------------------------------------------------------------


class UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that rejects duplicate mapping keys.

    Plain PyYAML keeps the last of two equal keys silently, which would hide an entry
    (a concept, a harm category) defined twice.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, raising on a repeated key."""
        self.flatten_mapping(node)
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """Parse YAML safely (no arbitrary objects), with duplicate keys as errors.

    Args:
        text: The YAML document.

    Returns:
        Plain data: dicts, lists, strings, numbers, booleans, None.

    Raises:
        yaml.YAMLError: Invalid YAML or a duplicate key; the message names the line.

    """
    # A SafeLoader subclass: safe as yaml.safe_load.
    return yaml.load(text, Loader=UniqueKeyLoader)


Location = tuple[int | str, ...]
"""Where a pydantic error sits: keys and list indices from the top of the document."""


def validation_error_line(error: ValidationError) -> str:
    """A pydantic error as one line, ``field.path: message; ...``.

    For files whose entries need no names of their own (JSONL lines, run records, eval
    corpora); :func:`describe_validation_error` names them.

    Args:
        error: The error of a ``model_validate`` call.

    Returns:
        One line, without the file name (the caller adds it).
    """
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def describe_validation_error(
    error: ValidationError, where: Callable[[Location], tuple[str, str]]
) -> str:
    """Describe each problem of a pydantic error as a sentence, joined by "; ".

    ``where(location)`` names the entry at a location and says what it must be, e.g.
    ``("concept 'joke': 'prompt'", "a non-empty string")``. With it, a missing field
    reads "concept 'joke' is missing 'prompt' (a non-empty string)", an unknown key
    "concept 'joke' has unknown key 'alias'; expected <what>", the ``ValueError`` of a
    custom validator "<entry> <its message>" (so word it to follow the entry's name:
    "must be lower case"), and anything else "<entry> must be <what>, not <the value>".

    Args:
        error: The error of a ``model_validate`` call.
        where: Names a location and its expected form (see above).

    Returns:
        One line, without the file name (the caller adds it).

    """
    problems: list[str] = []
    for item in error.errors():
        location: Location = tuple(item["loc"])
        kind = item["type"]
        if kind == "missing" and location:
            parent, _ = where(location[:-1])
            _, expected = where(location)
            problems.append(f"{parent} is missing {location[-1]!r} ({expected})")
        elif kind == "extra_forbidden" and location:
            parent, expected = where(location[:-1])
            problems.append(f"{parent} has unknown key {location[-1]!r}; expected {expected}")
        elif kind in ("value_error", "assertion_error"):
            entry, _ = where(location)
            message = str(item.get("ctx", {}).get("error", item["msg"]))
            problems.append(f"{entry} {message}")
        else:
            entry, expected = where(location)
            problems.append(f"{entry} must be {expected}, not {item['input']!r}")
    return "; ".join(problems)
