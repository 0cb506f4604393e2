"""Input and output guardrails: serious-harm refusal, profanity detection and masking.

Pure logic, no graph: the safety nodes call :class:`SafetyFilter`, and so do the tests.

Three levels, from :data:`SAFETY_LEVELS`:

* ``strict``: profanity (mild words included) blocks the input and is masked in replies.
* ``moderate``: profanity is allowed in the input and masked in replies; mild words
  (``hell``, ``damn``, ...) are neither.
* ``relaxed``: profanity is allowed and left untouched.

At every level, requests for serious harm (weapons, breaking in, self-harm methods,
malware) are refused, and so are the caller's ``strict_terms``.

Profanity uses the word list of ``better-profanity`` (``profanity_wordlist.txt``) and its
idea of character substitutions, but not its matcher: ``Profanity.censor`` compares each
word with ~900 variant objects one by one (10-35 ms a sentence), returns only a censored
copy, and misses "fuuuck", "f*ck" and "Hell's". Here the list and its inflections
("fuckers", "shitty") become dict keys once per process, and each token of the text is a
lookup after its leetspeak is undone ("sh1t", "a$$hole"), with slower tries only for
repeats ("fuuuck"), wildcards ("f*ck") and compounds ("clusterfuck"). Tokens are whole
words, so "Scunthorpe", "assistant" and "therapist" never match. Entries of the list that
are not profanity for a general assistant (medical, everyday and historical words such
as "kill", "god", "organ", "penetration") are left out.

The word lists and character tables are data, in ``lexicon/`` next to this module (each
file's header says what it holds, where it came from and how it is matched):
``mild.txt``, ``not_profanity.txt``, ``innocent_words.txt``, ``innocent_phrases.txt``,
``names.txt``, ``given_names.txt``, ``roots.txt`` and ``leet.txt``. Leetspeak is not
read inside codes ("A55-B00B5-7"), a capitalised word is not matched through a root at
its start ("Shitterton"), a listed name before another capitalised word is a name ("Dick
Smith"), and a capitalised word after a given name or an initial is a surname ("Sheila
Dikshit", "Philip K. Dick"). Text is folded with :func:`tools.text.fold_with_offsets`,
then look-alike letters of any script are read as Latin ones with Unicode's confusables
data (:mod:`tools.guardrails.confusables`). Serious-harm requests are matched by regexes kept as
data in ``prompts/safety.yaml`` (see :mod:`tools.guardrails.patterns`).
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from tools.guardrails.confusables import (
    enclosed_letters,
    latin_lookalikes,
    read_capitals,
    read_framed_letters,
)
from tools.guardrails.patterns import (
    DEFAULT_PATTERNS_FILE,
    HarmCategory,
    harm_categories,
    non_literal_frames,
)
from tools.guardrails.taxonomy import DEFAULT_TAXONOMY_FILE, load_taxonomy
from tools.text import fold_with_offsets, is_invisible

__all__ = [
    "DEFAULT_MILD_TERMS",
    "DEFAULT_PATTERNS_FILE",
    "SAFETY_LEVELS",
    "MaskResult",
    "SafetyFilter",
    "SafetyLevel",
    "SafetyVerdict",
    "validate_level",
]

SafetyLevel = Literal["strict", "moderate", "relaxed"]
SAFETY_LEVELS: tuple[str, ...] = ("strict", "moderate", "relaxed")

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"

# Symbols that stand for letters inside a word ("@" in "@ss", "!" in "sh!t"); "*" is a
# wildcard ("f*ck", "a**hole"). The tokeniser keeps them inside words, so leet.txt may
# only map these, digits and "_".
_LEET_SYMBOLS = frozenset("@$!|+*")
# A word written with digits or symbols; as short ones ("A55", "TL7", "t1t") are model
# numbers and codes more often than insults, they need four letters or more to match.
_LEETISH_RE = re.compile(r"[0-9@$!|+*]")
# Stripped from a token's edges when the whole token is no word: "shit!", "*hell*".
_EDGE_SYMBOLS = "!|+*_"
# What separates the letters of a spelled-out word: "f.u.c.k", "f u c k", "s-h-1-t".
# One to three of one of them, the same all through the word: "f  u  c  k", "f--u--c--k".
_SPELLING_GAPS = frozenset(char * n for char in " .-" for n in (1, 2, 3))


# --- data files -----------------------------------------------------------------------
# Read once, at import: small files, and a broken one should fail loudly and early.


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """Numbered entries of a lexicon file: "#" starts a comment, blank lines are skipped.

    Raises:
        ValueError: The file has no entry.

    """
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append((number, entry))
    if not entries:
        raise ValueError(f"{path}: no entries")
    return entries


def _word_list(path: Path) -> tuple[str, ...]:
    """The entries of a word list, in file order."""
    return tuple(entry for _, entry in _data_lines(path))


def _roots(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Roots matched anywhere in a token, and roots matched at its start or end.

    Raises:
        ValueError: A line is not ``<root> anywhere`` or ``<root> edges``.

    """
    where: dict[str, list[str]] = {"anywhere": [], "edges": []}
    for number, entry in _data_lines(path):
        fields = entry.split()
        if len(fields) != 2 or fields[1] not in where:
            raise ValueError(f"{path}:{number}: expected '<root> anywhere' or '<root> edges'")
        where[fields[1]].append(fields[0])
    return tuple(where["anywhere"]), tuple(where["edges"])


def _leet(path: Path) -> tuple[dict[int, str | None], dict[str, tuple[str, ...]]]:
    """Leetspeak as a translate table (one reading, or dropped) and ambiguous readings.

    Raises:
        ValueError: A character the tokeniser never keeps inside a word, or a reading
            that is not one letter.

    """
    table: dict[int, str | None] = {}
    readings: dict[str, tuple[str, ...]] = {}
    for number, entry in _data_lines(path):
        char, *letters = entry.split()
        if len(char) != 1 or not (char.isdigit() or char == "_" or char in _LEET_SYMBOLS):
            symbols = "".join(sorted(_LEET_SYMBOLS))
            raise ValueError(
                f"{path}:{number}: {char!r} never sits inside a word; only digits, '_' and "
                f"{symbols} do (extend _LEET_SYMBOLS and _TOKEN_RE in filter.py first)"
            )
        if not all(len(letter) == 1 and letter.isalpha() for letter in letters):
            raise ValueError(f"{path}:{number}: each reading must be one letter")
        if len(letters) > 1:
            readings[char] = tuple(letters)
        else:
            table[ord(char)] = letters[0] if letters else None
    return table, readings


# Mild words: profanity only at strict.
DEFAULT_MILD_TERMS: tuple[str, ...] = _word_list(LEXICON_DIR / "mild.txt")
_NOT_PROFANITY = _word_list(LEXICON_DIR / "not_profanity.txt")
_INNOCENT_WORDS = frozenset(_word_list(LEXICON_DIR / "innocent_words.txt"))
_INNOCENT_PHRASES = _word_list(LEXICON_DIR / "innocent_phrases.txt")
_SLURS = _word_list(LEXICON_DIR / "slurs.txt")
_NAMES = frozenset(_word_list(LEXICON_DIR / "names.txt"))
_COMMON_WORDS = frozenset(_word_list(LEXICON_DIR / "common_words.txt"))
_GIVEN_NAMES = frozenset(_word_list(LEXICON_DIR / "given_names.txt"))
_ROOTS_ANYWHERE, _ROOTS_AT_EDGES = _roots(LEXICON_DIR / "roots.txt")
_LEET, _READINGS = _leet(LEXICON_DIR / "leet.txt")
# Characters that send a token down the slower path: ambiguous readings, "*" wildcards.
_RARE_CHARS = frozenset(_READINGS) | {"*"}
_FIRST_READING = str.maketrans({char: letters[0] for char, letters in _READINGS.items()})
_HOMOGLYPHS = latin_lookalikes()
_ENCLOSED = enclosed_letters()

# Scripts written without spaces between words (Chinese, Japanese): each character is a
# word of its own, so text in them streams, and a listed word written right next to them
# ("这是shit吗") is still a word.
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
# A word: letters, digits, "_" and the leet symbols; or one character of _UNSPACED.
_TOKEN_RE = re.compile(rf"(?:[^\W{_UNSPACED}]|[@$!|+*])+|[{_UNSPACED}]")
_UNSPACED_RE = re.compile(f"[{_UNSPACED}]")
# Longer tokens (a URL, a hash, a line of base64) are no words: never matched, so a stream
# can let them through once they are this long instead of waiting for their end. Listed
# terms are shorter (checked when the tables are built).
MAX_WORD = 40
# One-letter words that may stand next to a spelled-out word: "What a s h i t show".
_ONE_LETTER_WORDS = frozenset("aio")
_LETTER_RE = re.compile(r"[^\W\d_]")
# What may separate the words of a listed phrase: "bull shit", "ass-fucker".
_PHRASE_GAP_RE = re.compile(r"[\s\-]{1,3}")
# Three or more of one character: "fuuuck", "shiiit".
_RUN_RE = re.compile(r"(.)\1{2,}")
_VOWELS = frozenset("aeiou")


def validate_level(level: str) -> SafetyLevel:
    """Check a safety level name.

    Args:
        level: ``"strict"``, ``"moderate"`` or ``"relaxed"`` (exact, lower case).

    Returns:
        The level, typed as :data:`SafetyLevel`.

    Raises:
        ValueError: For any other value; there is no fallback level.

    """
    if isinstance(level, str) and level in SAFETY_LEVELS:
        return cast(SafetyLevel, level)
    raise ValueError(f"unknown safety level {level!r}: expected one of {', '.join(SAFETY_LEVELS)}")


@dataclass(frozen=True)
class SafetyVerdict:
    """What the input guardrail decided about one message.

    Attributes:
        allowed: False when the message must not reach the model.
        level: The level the message was checked at.
        reason: Why it was blocked, human-readable (for example
            ``"profanity (strict level): shit, fucking"`` or
            ``"serious harm: weapons and explosives"``); None when allowed.
        category: None when allowed; else a hazard category of the taxonomy
            (``prompts/safety_taxonomy.yaml``: ``"indiscriminate_weapons"``,
            ``"self_harm"``, ...), or the lexical layer's own ``"profanity"``, ``"slur"``
            (both at strict only) or ``"strict_term"``.
        matches: Every matched term or phrase as it appears in the text, in text order,
            repeats included. A blocked verdict lists what blocked it; an allowed one
            lists the profanity seen, which moderate and relaxed let through.
        rule: What matched, when a rule did: the harm pattern's key in ``safety.yaml``
            (``"weapons"``, ``"threats"``, ...); None otherwise.
        layer: Which layer decided (``"lexical"``, ``"semantic"``, ``"judge"``); None
            when no layer looked beyond the words.
        scores: What the layers beyond the words saw (harm probability, nearest
            exemplar, the judge's reply and time ...), for the log and the state.
        framed: A harm-pattern refusal whose every hit sits in a non-literal frame of
            the patterns file ("how do I rob the bank in Monopoly", "an explosive
            flavour curry"): the guard lets the judge decide before refusing.

    """

    allowed: bool
    level: SafetyLevel
    reason: str | None
    category: str | None
    matches: tuple[str, ...]
    rule: str | None = None
    layer: str | None = None
    scores: Mapping[str, Any] | None = None
    framed: bool = False

    def as_dict(self) -> dict[str, object]:
        """Plain-data form for the graph state: the fields, ``matches`` as a list."""
        return {
            "allowed": self.allowed,
            "level": self.level,
            "reason": self.reason,
            "category": self.category,
            "matches": list(self.matches),
            "rule": self.rule,
            "layer": self.layer,
            "scores": dict(self.scores or {}),
        }


@dataclass(frozen=True)
class MaskResult:
    """A reply after output masking.

    Attributes:
        text: The reply with every profane word masked (unchanged when nothing matched).
        masked: The masked words as they appeared, in text order, repeats included.

    """

    text: str
    masked: tuple[str, ...]


# --- text normalisation -------------------------------------------------------------


def _normalise(text: str) -> tuple[str, list[int] | None]:
    """Fold text for matching: NFKC, lower case, straight quotes, no accents, no homoglyphs.

    Returns:
        The folded text and, for non-ASCII text, the index in ``text`` of each folded
        character (None means the same index), so matches map back to the original.

    """
    # Letters in frames first (one for one: the offsets hold), as NFKC would make
    # "\u24a1" three characters, "(f)", and leaves "\U0001f175" as it is; and capitals
    # whose small letter looks like another letter ("\u0397" H, "\u03b7" n) before case
    # is folded away.
    norm, index = fold_with_offsets(
        text if text.isascii() else read_capitals(read_framed_letters(text))
    )
    if index is None:  # ASCII text holds no homoglyph and no mark
        return norm, index
    if _MARK_RE.search(norm):
        # Marks the fold keeps (enclosing circles and keycaps, "fu\u20ddck"; Thai and
        # Indic vowel signs) are no letters: a word is read without them, as without
        # accents, so no mark splits a word in two.
        kept = [i for i, char in enumerate(norm) if not _is_mark(char)]
        norm, index = "".join(norm[i] for i in kept), [index[i] for i in kept]
    # One letter for one: the index still fits.
    norm = norm.translate(_HOMOGLYPHS)
    if _FOREIGN_RE.search(norm) and _LATIN_RE.search(norm):
        norm, index = _script_breaks(text, norm, index)
    return norm, index


# What parts two words of different scripts in the folded text: no letter, no space (no
# listed phrase spans it: its words are Latin ones).
SCRIPT_BREAK = "\x00"
# A letter that is no Latin one once folded (Arabic, Hebrew, Thai, Cyrillic "д", ...); a
# Latin one, or a digit or leet symbol that may stand for one.
_FOREIGN_RE = re.compile(rf"[^\W\x00-\x7f{_UNSPACED}]")
_LATIN_RE = re.compile(r"[a-z0-9@$!|+*]")


@lru_cache(maxsize=4096)
def _script(char: str) -> str:
    """The script a character's name gives ("LATIN", "CYRILLIC", "THAI", "FULLWIDTH")."""
    return "LATIN" if char.isascii() else unicodedata.name(char, "").split(" ", 1)[0]


def _script_breaks(text: str, norm: str, index: list[int]) -> tuple[str, list[int]]:
    """Part a Latin word from a word of another script written right next to it.

    "\u05e2\u05d5\u05dc\u05ddshit" (Hebrew, then "shit") is two words, as a reader sees
    it: folded, :data:`SCRIPT_BREAK` goes between them (indexed like the letter after
    it), so the Latin word is matched alone and the Hebrew one is never masked with it. A run of
    letters of one script is a foreign word when one of its letters is no Latin look-alike
    (Arabic "\u0645\u0631\u062d\u0628\u0627", though its alif reads "l"); look-alikes
    mixed into a Latin word ("\u0455h\u0456t") are one word with it.
    """
    kinds = [
        "latin" if _LATIN_RE.match(char) else "foreign" if _FOREIGN_RE.match(char) else ""
        for char in norm
    ]
    scripts = [_script(text[i]) for i in index]
    # Runs of word characters of one script, and whether each is a foreign word.
    runs: list[int] = []  # the run number of each position (-1: no word character)
    foreign: list[bool] = []
    for position, kind in enumerate(kinds):
        if not kind:
            runs.append(-1)
            continue
        if position and runs[-1] >= 0 and scripts[position] == scripts[position - 1]:
            runs.append(runs[-1])
        else:
            runs.append(len(foreign))
            foreign.append(False)
        if kind == "foreign":
            foreign[runs[-1]] = True
    chars: list[str] = []
    where: list[int] = []
    for position, char in enumerate(norm):
        run, before = runs[position], runs[position - 1] if position else -1
        if run >= 0 and before >= 0 and run != before and (foreign[run] or foreign[before]):
            chars.append(SCRIPT_BREAK)
            where.append(index[position])
        chars.append(char)
        where.append(index[position])
    return "".join(chars), where


@lru_cache(maxsize=4096)
def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


# Any character that may be a mark (not ASCII, not CJK): a quick test before the slow one.
_MARK_RE = re.compile(r"[^\x00-\u02ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


_MIXED_WORD_RE = re.compile(r"[a-z0-9@$]*[a-z][a-z0-9@$]*")


# A word that mixes letters with a character of two readings ("k1ll", "k!ll", "ki11"); a
# symbol only inside it, so "kill!" ends at its "!" and stays "kill".
_INNER_SYMBOL = "|".join(
    re.escape(char) + "(?=[a-z0-9@$])" for char in sorted(_READINGS) if not char.isalnum()
)
_AMBIGUOUS_WORD_RE = re.compile(
    f"(?:[a-z0-9@$]|{_INNER_SYMBOL})*[a-z](?:[a-z0-9@$]|{_INNER_SYMBOL})*"
    if _INNER_SYMBOL
    else "[a-z0-9@$]*[a-z][a-z0-9@$]*"
)


def _deleet_words(text: str, harm_words: Sequence[str] = ()) -> str:
    """Undo leetspeak in words that mix letters with digits or symbols ("b0mb" -> "bomb").

    A character of two readings ("1" and "!": "i" or "l") is read only where a reading
    makes the word start with one of ``harm_words`` ("k1ll", "k!ll", "ki11" -> "kill",
    "k1lling"); any other word keeps it ("sk1ll"), so versions and codes ("v1.3", "mp3",
    "24/7") stay as written.
    The length never changes, so match positions still map back to the original text.
    """
    text = _MIXED_WORD_RE.sub(
        lambda m: m.group().translate(_LEET) if _LEETISH_RE.search(m.group()) else m.group(),
        text,
    )
    if not harm_words or not any(char in text for char in _READINGS):
        return text

    def harm_reading(match: re.Match[str]) -> str:
        word = match.group()
        if not any(char in word for char in _READINGS):
            return word
        for reading in _readings(word):
            if reading.startswith(tuple(harm_words)):
                return reading
        return word

    return _AMBIGUOUS_WORD_RE.sub(harm_reading, text)


def _canon(word: str) -> str:
    return word.translate(_LEET)


def _core_text(word: str) -> str:
    return word.strip(_EDGE_SYMBOLS) or word


@lru_cache(maxsize=4096)
def _readings(key: str) -> tuple[str, ...]:
    """Every reading of a key's ambiguous characters ("he11" -> "heii" ... "hell")."""
    positions = [i for i, char in enumerate(key) if char in _READINGS]
    if not positions:
        return (key,)
    if len(positions) > 4:  # at most 16 readings
        return (key.translate(_FIRST_READING),)
    readings = []
    for letters in itertools.product(*(_READINGS[key[i]] for i in positions)):
        chars = list(key)
        for position, letter in zip(positions, letters, strict=True):
            chars[position] = letter
        readings.append("".join(chars))
    return tuple(readings)


class _Token(NamedTuple):
    """One word of the folded text, with its canonical lookup keys."""

    start: int
    end: int
    core_start: int  # the span without edge symbols: "shit" of "shit!"
    core_end: int
    word: str  # the token as written (the joined letters of "f-u-c-k")
    full: str  # canonical key of the whole token
    core: str  # canonical key of the core
    letters: tuple[int, ...] = ()  # a spelled-out word: where each of its letters is


def _make_token(norm: str, start: int, end: int) -> _Token:
    text = norm[start:end]
    full = text.translate(_LEET)
    if text[0] in _EDGE_SYMBOLS or text[-1] in _EDGE_SYMBOLS:
        core = text.strip(_EDGE_SYMBOLS)
        if core:
            core_start = start + len(text) - len(text.lstrip(_EDGE_SYMBOLS))
            return _Token(start, end, core_start, core_start + len(core), text, full, _canon(core))
    return _Token(start, end, start, end, text, full, full)


def _spells(char: str, inner: bool = False) -> bool:
    """Tell whether a one-character token may be a letter of a spelled-out word.

    Latin letters and digits (look-alikes are Latin by now), "@", "$" and "+" ("d.@.m.n",
    "$ h i t", "c-u-n-+"), not a Chinese character: "f u c k 你好" is a spelled word and
    then two words, not one run "fuck你好". ``inner``: inside a word, between two of
    those, "!" and "|" too ("b ! t c h", "s-h-!-t"); at its edges they are punctuation
    ("a b !").
    """
    return (char.isascii() and char.isalnum()) or char in ("@$+!|" if inner else "@$+")


def _narrower(gap: str, other: str) -> bool:
    """Tell whether ``gap`` parts letters inside a word where ``other`` parts words.

    Fewer of the same character ("h o w  d o": one space in a word, two between words),
    or a dot or hyphen against spaces ("h.o.w d.o"). Both are spelling gaps.
    """
    if gap not in _SPELLING_GAPS or other not in _SPELLING_GAPS:
        return False
    if gap[0] == other[0]:
        return len(gap) < len(other)
    return gap[0] != " " and other[0] == " "


class _Letters:
    """The one-character tokens of folded text and the spaced-out sentences they form.

    A spaced-out sentence is a row of letters parted by spelling gaps where one gap is
    narrower than every other: "h o w  d o  I  s e e" (one space in a word, two between
    words), "h.o.w d.o I". There a wider gap parts words. In other rows it does not, as
    before: where the gaps differ in kind ("f.u.c.k-i-n-g") or a wider gap spells a word
    of its own ("a b  o  m  b").
    """

    def __init__(self, norm: str, spans: Sequence[tuple[int, int]]) -> None:
        self.norm = norm
        self.spans = spans
        # For each token in a spaced-out sentence, the gap inside the sentence's words.
        self.sentence: list[str | None] = [None] * len(spans)
        # Rows of two or more letters, found among the one-character tokens alone (most
        # text has few): (first, last) token indices.
        rows: list[list[int]] = []
        for k in (k for k, (start, end) in enumerate(spans) if end - start == 1):
            if (
                rows
                and rows[-1][1] == k - 1
                and self.gap(k - 1) in _SPELLING_GAPS
                and self.letter(k - 1)
                and self.letter(k)
            ):
                rows[-1][1] = k
            else:
                rows.append([k, k])
        for k, last in rows:
            if last > k:
                gaps = [self.gap(g) for g in range(k, last)]
                kinds = set(gaps)
                inner = next(
                    (g for g in kinds if all(g == o or _narrower(g, o) for o in kinds)), None
                )
                if (
                    inner is not None
                    and len(kinds) > 1
                    # Three of a wider gap in a row spell a word of their own ("b.u.l.l
                    # 5 h 1 t"): two words spelled two ways, no sentence.
                    and not any(
                        a == b == c != inner
                        for a, b, c in zip(gaps, gaps[1:], gaps[2:], strict=False)
                    )
                ):
                    self.sentence[k : last + 1] = [inner] * (last + 1 - k)

    def letter(self, k: int, inner: bool = True) -> bool:
        """Whether token ``k`` may be a letter of a spelled-out word (:func:`_spells`)."""
        start, end = self.spans[k]
        return end - start == 1 and _spells(self.norm[start], inner)

    def gap(self, k: int) -> str:
        """What lies between token ``k`` and the next ("" after the last)."""
        if k + 1 >= len(self.spans):
            return ""
        return self.norm[self.spans[k][1] : self.spans[k + 1][0]]


def _spelled_end(letters: _Letters, i: int) -> int:
    """The index of the last one-character token of the spelled-out word at ``i``.

    One gap throughout ("f u c k", "f.u.c.k"); where the gap changes and two letters
    follow with the new gap, the letter before it starts the next word ("b u l l s h i t
    s.h.i.t" is "bullshit" and "shit"). In a spaced-out sentence ("h o w  d o  I  s e
    e", see :class:`_Letters`) only its narrowest gap joins letters: "o  I  s" is no word.
    """

    def starts_word(k: int) -> bool:
        # Letters k, k+1 and k+2 parted by one gap narrower than the one before k: the
        # wider gap parts words ("t s.h.i"); a space after dotted letters ends them
        # ("i.t 5 h 1"). A wider gap after k is no word's ("o  I  s e e").
        return (
            k + 2 < len(letters.spans)
            and letters.letter(k + 1)
            and letters.letter(k + 2)
            and _narrower(letters.gap(k), letters.gap(k - 1))
            and letters.gap(k + 1) == letters.gap(k)
        )

    if not letters.letter(i, inner=False):
        return i
    first = letters.gap(i)
    if letters.sentence[i] not in (None, first):
        return i  # a one-letter word of a spaced-out sentence ("I" of "d o  I  s e e")
    j = i
    while (
        j + 1 < len(letters.spans)
        and letters.letter(j + 1)
        and letters.gap(j) in _SPELLING_GAPS
        and letters.gap(j) == first
        and not starts_word(j + 1)
    ):
        j += 1
    while j > i and not letters.letter(j, inner=False):
        j -= 1
    return j


def _spelled_pair(letters: _Letters, i: int) -> bool:
    """Tell whether letters ``i`` and ``i + 1`` are a two-letter spelled-out word.

    Only in a spaced-out sentence ("d o" of "h o w  d o  I", "d.o" of "h.o.w d.o I"):
    elsewhere two letters are no spelled word ("plan a b", "e.g", "0.3 s").
    """
    gap = letters.gap(i)
    return (
        letters.sentence[i] == gap
        and all(letters.norm[letters.spans[k][0]].isalpha() for k in (i, i + 1))
        and (i == 0 or letters.sentence[i - 1] is None or letters.gap(i - 1) != gap)
        and (i + 2 >= len(letters.spans) or letters.gap(i + 1) != gap)
    )


def _tokenise(norm: str) -> list[_Token]:
    """Split folded text into tokens, joining spelled-out words ("f.u.c.k", "s h i t")."""
    spans = [m.span() for m in _TOKEN_RE.finditer(norm)]
    letters = _Letters(norm, spans)
    tokens: list[_Token] = []
    i = 0
    while i < len(spans):
        start, end = spans[i]
        # Only a one-character token may start a spelled-out word.
        j = _spelled_end(letters, i) if end - start == 1 else i
        if j - i >= 2 or (j - i == 1 and _spelled_pair(letters, i)):
            places = tuple(s for s, _ in spans[i : j + 1])
            joined = "".join(norm[s] for s in places)
            key = _canon(joined)
            end = spans[j][1]
            tokens.append(_Token(start, end, start, end, joined, key, key, places))
            i = j + 1
        else:
            tokens.append(_make_token(norm, start, end))
            i += 1
    return tokens


@lru_cache(maxsize=4096)
def _squeezed(key: str) -> tuple[str, ...]:
    """Variants of a key with each run of 3+ equal characters cut to 1 or 2 ("fuuuck")."""
    runs = list(_RUN_RE.finditer(key))[:4]  # at most 16 variants
    if not runs:
        return ()
    variants = []
    for lengths in itertools.product((1, 2), repeat=len(runs)):
        parts: list[str] = []
        position = 0
        for run, length in zip(runs, lengths, strict=True):
            parts.append(key[position : run.start()])
            parts.append(run.group(1) * length)
            position = run.end()
        parts.append(key[position:])
        variants.append("".join(parts))
    return tuple(variants)


# --- word lists -----------------------------------------------------------------------


def _inflections(word: str) -> set[str]:
    """Return the word and its regular plural, -ed, -er, -ing and -y forms."""
    forms = {word}
    if len(word) < 3 or not word[-1].isalpha():
        return forms
    forms.update(word + suffix for suffix in ("s", "ed", "er", "ers", "ing", "ings", "y"))
    last = word[-1]
    if last in "sxz" or word.endswith(("ch", "sh")):
        forms.add(word + "es")
    if last == "e":
        stem = word[:-1]
        forms.update((word + "d", word + "r", word + "rs", stem + "ing", stem + "ings", stem + "y"))
    if last == "y" and word[-2] not in _VOWELS:
        stem = word[:-1]
        forms.update((stem + "ies", stem + "ied", stem + "ier"))
    if last not in _VOWELS | set("wxy") and word[-2] in _VOWELS and word[-3] not in _VOWELS:
        double = word + last  # "shit" -> "shitting", "shitty"
        forms.update(double + suffix for suffix in ("ed", "er", "ers", "ing", "ings", "y"))
    return forms


def _term_words(term: str) -> list[str]:
    """Split a listed term into words, folded and tokenised the way text is."""
    norm, _ = _normalise(term)
    return [_core_text(token.word) for token in _tokenise(norm)]


def _expand_words(words: Sequence[str], drop: frozenset[str]) -> dict[str, str]:
    """Canonical keys of a term and its inflections, each mapped to the term's key.

    Inflections only change the last word ("blow jobs"); a derived form whose key is in
    ``drop`` (an innocent word) is left out, the term itself never is.
    """
    head = [_canon(w) for w in words[:-1]]
    base = " ".join([*head, _canon(words[-1])])
    keys = {base: base}
    for form in _inflections(words[-1]):
        key = " ".join([*head, _canon(form)])
        if key not in drop:
            keys.setdefault(key, base)
    return keys


@lru_cache(maxsize=1)
def _innocent_keys() -> frozenset[str]:
    return frozenset(_canon(word) for word in _INNOCENT_WORDS)


@lru_cache(maxsize=1)
def _innocent_phrase_keys() -> frozenset[str]:
    return frozenset(_expand_all(_term_words(phrase) for phrase in _INNOCENT_PHRASES))


@lru_cache(maxsize=1)
def _wordlist() -> tuple[str, ...]:
    """better-profanity's word list, read without importing the package.

    Importing it builds its own censor tables (~60 ms) that this module never uses.
    """
    spec = importlib.util.find_spec("better_profanity")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("better-profanity is not installed: pip install better-profanity==0.7.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "profanity_wordlist.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip())


@lru_cache(maxsize=1)
def _library_keys() -> dict[str, str]:
    """Canonical keys of better-profanity's list and inflections, minus non-profanity."""
    skip = {" ".join(_canon(w) for w in _term_words(term)) for term in _NOT_PROFANITY}
    drop = _innocent_keys()
    keys: dict[str, str] = {}
    for entry in _wordlist():
        # Leet spellings ("sh1t", "sh!+", "masterbat*") are the matcher's job, and folded
        # as words some read as names ("l3i+ch" is "leitch").
        if " " not in entry and _LEETISH_RE.search(entry):
            continue
        words = _term_words(entry)
        if not words:
            continue
        if " ".join(_canon(w) for w in words) in skip:
            continue
        for key, base in _expand_words(words, drop).items():
            keys.setdefault(key, base)
    return keys


@lru_cache(maxsize=1)
def _slur_keys() -> dict[str, str]:
    return _expand_all(_term_words(term) for term in _SLURS)


def _caller_terms(name: str, terms: Sequence[str] | None) -> tuple[tuple[str, ...], ...]:
    """Validate a term list from the caller; return each term's words."""
    if terms is None:
        return ()
    if isinstance(terms, str):
        raise ValueError(f"{name} must be a list of strings, not the string {terms!r}")
    parsed = []
    for term in terms:
        if not isinstance(term, str):
            raise ValueError(f"{name} must contain strings, not {term!r}")
        words = _term_words(term)
        # Like text, a term needs a letter: "455" or "!!!" would match numbers and shouting.
        if not any(_LETTER_RE.search(word) for word in words):
            raise ValueError(f"{name}: {term!r} has no letters to match")
        if any("*" in w for w in words):
            raise ValueError(f"{name}: {term!r}: '*' is no wildcard in terms; list the word")
        parsed.append(tuple(words))
    return tuple(parsed)


def _expand_all(terms: Iterable[Sequence[str]]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for words in terms:
        for key, base in _expand_words(words, _innocent_keys()).items():
            keys.setdefault(key, base)
    return keys


# What joins the parts of a code or model number ("A55-B00B5-7", "5H1T-22", "X1/B00B").
_CODE_JOINS = frozenset("-/._:")


def _code_part(word: str) -> bool:
    """Tell whether a part of a code is no word: digits with at most one letter ("22", "A55")."""
    return any(char.isdigit() for char in word) and sum(char.isalpha() for char in word) < 2


def _in_code(norm: str, tokens: Sequence[_Token], i: int) -> bool:
    """Tell whether token ``i`` is part of a code, not leetspeak.

    "B00B5" in "A55-B00B5-7" and "5H1T" in "5H1T-22" are two-fifths digits or more, and
    joined to parts that are no words; "sh1t-faced", "sh1thead-99" and "5H1T" alone are
    still read as leetspeak.
    """
    token = tokens[i]
    # Mostly digits, as parts of codes are: "sh1thead-99" is leetspeak and a number.
    if token.word.isalpha() or 5 * sum(char.isdigit() for char in token.word) < 2 * len(token.word):
        return False
    for j in (i - 1, i + 1):
        if 0 <= j < len(tokens) and not tokens[j].letters:
            start, end = (tokens[j].end, token.start) if j < i else (token.end, tokens[j].start)
            if end - start == 1 and norm[start] in _CODE_JOINS and _code_part(tokens[j].word):
                return True
    return False


def _mostly_digits(token: _Token) -> bool:
    """Tell whether a short token is half digits or more ("A55", "455"): a code."""
    core = _core_text(token.word)
    return len(core) <= 3 and 2 * sum(char.isdigit() for char in core) >= len(core)


def _hangs_on_next(norm: str, token: _Token, following: _Token) -> bool:
    """Tell whether a token's match depends on the one after it, so no cut goes between.

    Parts of a code ("5H1T-22"), a name before a surname ("Dick Smith"), and a given name
    or an initial before a word that may be a surname ("Sheila Dikshit", "K. Dick").
    """
    gap = norm[token.end : following.start]
    if len(gap) == 1 and gap in _CODE_JOINS:
        return any(char.isdigit() for char in token.word + following.word)
    if gap == ". " and token.end - token.start == 1 and token.word.isalpha():
        return True
    return gap == " " and (token.full in _NAMES or token.full in _GIVEN_NAMES)


def _named(norm: str, tokens: Sequence[_Token], i: int, capitalised: frozenset[int]) -> bool:
    """Tell whether token ``i`` is a listed word used as a person's name ("Dick Smith").

    A name of names.txt, capitalised, before another capitalised word (a surname). Only
    the word after counts, so a stream decides once that word is there ("Hey Dick" stays
    matched; "Philip Dick" is a surname after a given name, :meth:`_Prepared.surnames`).
    """
    if i not in capitalised or tokens[i].full not in _NAMES:
        return False
    return i + 1 in capitalised and norm[tokens[i].end : tokens[i + 1].start] == " "


@dataclass(frozen=True)
class _Lexicon:
    """A lookup table of canonical keys, ready for scanning."""

    keys: Mapping[str, str]  # canonical key -> key of the listed term it comes from
    max_words: int
    phrase_starts: frozenset[str]  # first words of the multi-word keys
    by_length: Mapping[int, tuple[str, ...]]  # one-word keys, for wildcard tokens
    roots: tuple[str, ...]  # matched anywhere in a token
    edge_roots: tuple[str, ...]  # matched at the start or end of a token
    exempt: frozenset[str]  # whitelisted and innocent keys, never matched through a root
    safe: frozenset[str]  # innocent multi-word keys ("maine coon"), skipped as a whole
    root_hint: re.Pattern[str] | None  # finds text that may hold a root ("fuuuck" too)

    @classmethod
    def build(
        cls,
        keys: Mapping[str, str],
        *,
        roots: bool = False,
        exempt: frozenset[str] = frozenset(),
        safe: frozenset[str] = frozenset(),
    ) -> _Lexicon:
        by_length: dict[int, list[str]] = {}
        for key in keys:
            if " " not in key:
                by_length.setdefault(len(key), []).append(key)
        anywhere = tuple(r for r in _ROOTS_ANYWHERE if r in keys) if roots else ()
        edges = tuple(r for r in _ROOTS_AT_EDGES if r in keys) if roots else ()
        hint = "|".join("+".join(map(re.escape, root)) + "+" for root in (*anywhere, *edges))
        return cls(
            keys=keys,
            max_words=max((key.count(" ") + 1 for key in itertools.chain(keys, safe)), default=1),
            phrase_starts=frozenset(
                key.split(" ")[0] for key in itertools.chain(keys, safe) if " " in key
            ),
            by_length={n: tuple(sorted(words)) for n, words in by_length.items()},
            roots=anywhere,
            edge_roots=edges,
            exempt=exempt | _innocent_keys(),
            safe=safe,
            root_hint=re.compile(hint) if hint else None,
        )

    def _wildcard(self, key: str) -> bool:
        """Tell whether a token with "*" ("f*ck", "a**hole") fits a listed word."""
        stars = key.count("*")
        letters = sum(char.isalpha() for char in key)
        # "f***" or "****" could be anything: two letters at least, and no more stars.
        if letters < 2 or stars > letters:
            return False
        pattern = re.compile(re.escape(key).replace(r"\*", "."))
        return any(pattern.fullmatch(word) for word in self.by_length.get(len(key), ()))

    def _rooted(self, key: str, name: bool = False) -> bool:
        """Tell whether a key holds a compound root ("clusterfuck", "apeshit").

        In a ``name`` (a capitalised word: "Shitterton", a village) a root at the
        start of the word does not count; one inside or at its end still does.
        """
        if key in self.exempt:
            return False
        for variant in (key, *_squeezed(key)):
            if any(root in variant for root in self.roots):
                return True
            if variant.endswith(self.edge_roots):
                return True
            if not name and variant.startswith(self.edge_roots):
                return True
        return False

    def match_token(
        self, token: _Token, rare: bool = True, roots: bool = True, name: bool = False
    ) -> tuple[int, int] | None:
        """Return the span of the token that is listed, or None.

        ``rare`` False says no token's key in the text has a run of three equal
        characters or a compound root, which skips the slow checks for most tokens; ``roots`` False
        skips compound roots; ``name`` says the word is capitalised (see _rooted).
        """
        if token.end - token.start > MAX_WORD:
            return None
        keys = self.keys
        hit: tuple[int, int, str, str] | None = None  # start, end, key, text
        # The core (edge symbols off: "shit" of "shit!", "fuck" of "_fuck_") first, so the
        # "!" of "hell!" is not read as a letter; the whole token for "sh!+".
        if token.core in keys:
            hit = token.core_start, token.core_end, token.core, _core_text(token.word)
        elif token.full in keys:
            hit = token.start, token.end, token.full, token.word
        elif rare or not _RARE_CHARS.isdisjoint(token.full):
            hit = self._match_rare(token, roots, name)
        if hit is None:
            return None
        start, end, key, text = hit
        # Numbers ("455" reads "ass") are no words; "tittles" is a known innocent word.
        if token.word in _INNOCENT_WORDS or not _LETTER_RE.search(text):
            return None
        if len(key) <= 3 and _LEETISH_RE.search(text):
            return None
        return start, end

    def _match_rare(
        self, token: _Token, roots: bool = True, name: bool = False
    ) -> tuple[int, int, str, str] | None:
        """Try "1!|" readings, repeats ("fuuuck"), wildcards ("f*ck"), roots."""
        candidates = [(token.full, token.start, token.end, token.word)]
        if token.core != token.full:
            core = (token.core, token.core_start, token.core_end, _core_text(token.word))
            candidates.insert(0, core)
        for key, start, end, text in candidates:
            for reading in _readings(key):
                if reading in self.keys:
                    return start, end, reading, text
                for variant in _squeezed(reading):
                    if variant in self.keys:
                        return start, end, variant, text
        # Stars inside a word only: "*word*" is markdown emphasis. Repeats too: "f*ckkkk".
        # The core first, then the whole token: "c*n+" is "c*nt" ("+" at an edge).
        for key, start, end, text in candidates:
            if "*" not in key.strip("*"):
                continue
            plain = key.translate(_FIRST_READING)
            # Only letters are squeezed: a run of stars stands for as many letters.
            variants = [v for v in _squeezed(plain) if v.count("*") == plain.count("*")]
            if any(self._wildcard(variant) for variant in (plain, *variants)):
                return start, end, key, text
        if roots and self.root_hint is not None and self.root_hint.search(token.full):
            for key, start, end, text in candidates:
                for reading in _readings(key):
                    if self._rooted(reading, name):
                        return start, end, reading, text
        return None

    def _phrase_end(self, norm: str, tokens: Sequence[_Token], first: int) -> tuple[int, bool]:
        """Find the longest listed or innocent phrase starting at token ``first``.

        Returns:
            The index of its last token (-1 if none) and whether it is innocent.

        """
        last = first
        limit = min(first + self.max_words, len(tokens)) - 1
        while last < limit and _PHRASE_GAP_RE.fullmatch(
            norm, tokens[last].end, tokens[last + 1].start
        ):
            last += 1
        for end in range(last, first, -1):
            key = " ".join(t.core for t in tokens[first : end + 1])
            if key in self.safe:
                return end, True
            # Ambiguous leetspeak read the first way too: "bull sh1t".
            if key in self.keys or key.translate(_FIRST_READING) in self.keys:
                return end, False
        return -1, False

    def _match_run(self, norm: str, token: _Token, rare: bool) -> list[tuple[int, int]]:
        """Spans of a spelled-out word ("f u c k"): the whole run, or listed words in it.

        A run may take in a one-letter word next to it ("What a s h i t show" joins
        "ashit"): then only the listed word's letters are masked, never the "a". A run
        whose other letters are no such words ("c l a s s i c") is a word that is not
        listed, and nothing in it matches.
        """
        # The gaps hide repeats from the text-wide hint ("b.u.l.l.l.l.s.h.i.t"): the slow
        # readings always.
        span = self.match_token(token, True, roots=False)
        if span is not None:
            return [span]
        if len(token.letters) > MAX_WORD:
            return []
        letters = token.letters
        chars = "".join(norm[position] for position in letters)
        found: list[tuple[int, int]] = []
        leftover: list[str] = []
        i = 0
        while i < len(chars):
            for length in range(len(chars) - i, 2, -1):
                key = _canon(chars[i : i + length])
                if key not in self.exempt and any(
                    variant in self.keys
                    for reading in _readings(key)
                    for variant in (reading, *_squeezed(reading))
                ):
                    found.append((letters[i], letters[i + length - 1] + 1))
                    i += length
                    break
            else:
                leftover.append(chars[i])
                i += 1
        # What is left must be words of its own: "a", "i", "o", or a number ("7 a s s").
        if found and all(char in _ONE_LETTER_WORDS or char.isdigit() for char in leftover):
            return found
        return []

    def scan(
        self,
        norm: str,
        tokens: Sequence[_Token],
        phrases: list[tuple[int, int]] | None = None,
        capitalised: frozenset[int] = frozenset(),
        surnames: frozenset[int] = frozenset(),
        *,
        words: bool = True,
    ) -> list[tuple[int, int]]:
        """Spans (in the folded text) of every listed term, left to right, longest first.

        Args:
            norm: The folded text.
            tokens: Its tokens.
            phrases: If given, the first and last token index of every phrase taken as
                a whole (listed, or innocent like "maine coon") is appended to it: a
                stream must not cut the text inside one.
            capitalised: Indices of the tokens written with a capital and then lower
                case ("Shitterton", "Dick"), which may be names.
            surnames: Indices of the tokens that are surnames ("Dick" of "Philip K.
                Dick"), never matched.
            words: False: phrases only, no word alone (for ``phrases``: which words
                a phrase takes in does not depend on the words matched alone).

        """
        if not self.keys:
            return []
        # Looked for in the text as the tokens' keys read it (leetspeak undone, "_"
        # dropped: "s_s_s_h_i_t", "ape$hit"), so it holds whatever any token's key holds
        # and a word is read the same whatever text is around it: a stream reads its
        # words in a shorter text than the stored reply.
        keyed = norm.translate(_LEET) if words else ""
        rare = _RUN_RE.search(keyed) is not None or (
            self.root_hint is not None and self.root_hint.search(keyed) is not None
        )
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token.core in self.phrase_starts:
                end, innocent = self._phrase_end(norm, tokens, i)
                # A word of a code, or a short word mostly of digits ("fuck A55-B00B5-7"),
                # is no word of a phrase, as it is no word alone; "blow j0b" still is one.
                if (
                    end >= 0
                    and not innocent
                    and any(
                        _in_code(norm, tokens, k) or _mostly_digits(tokens[k])
                        for k in range(i, end + 1)
                    )
                ):
                    end = -1
                if end >= 0:
                    if not innocent:
                        spans.append((token.core_start, tokens[end].core_end))
                    if phrases is not None:
                        phrases.append((i, end))
                    i = end + 1
                    continue
            if words and token.letters:
                spans.extend(self._match_run(norm, token, rare))
            elif (
                words
                and not token.letters
                and not _in_code(norm, tokens, i)
                and not _named(norm, tokens, i, capitalised)
                and i not in surnames
            ):
                span = self.match_token(token, rare, name=i in capitalised)
                if span is not None:
                    spans.append(span)
            i += 1
        return spans


class _Prepared(NamedTuple):
    """A text folded and tokenised once, for several checks."""

    text: str
    norm: str
    positions: list[int] | None
    tokens: list[_Token]

    @classmethod
    def of(cls, text: str) -> _Prepared:
        norm, index = _normalise(text)
        return cls(text, norm, index, _tokenise(norm))

    def original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the folded text back to the original text.

        The span takes in the marks after its last letter ("k\u0336" of "f\u0336uc\u0336k\u0336"):
        a mark belongs to the letter before it, so it is masked with it.
        """
        if self.positions is None:
            return start, end
        last = self.positions[end - 1] + 1
        # Marks, and invisible characters between the letter and a mark ("k\u200b\u0301").
        k = last
        while k < len(self.text) and (_is_mark(self.text[k]) or is_invisible(self.text[k])):
            k += 1
            if _is_mark(self.text[k - 1]):
                last = k
        return self.positions[start], last

    def find(self, lexicon: _Lexicon) -> list[tuple[int, int]]:
        """Original spans of the lexicon's terms."""
        capitalised = self.capitalised()
        return [
            self.original(s, e)
            for s, e in lexicon.scan(
                self.norm,
                self.tokens,
                capitalised=capitalised,
                surnames=self.surnames(capitalised),
            )
        ]

    def capitalised(self) -> frozenset[int]:
        """Indices of the tokens written as a name is: "Dick", "Shitterton", not "DICK"."""
        found = []
        for i, token in enumerate(self.tokens):
            if not token.letters and token.end - token.start >= 3:
                word = self.text[slice(*self.original(token.start, token.end))]
                if word.istitle() and word.isalpha():
                    found.append(i)
        return frozenset(found)

    def surnames(self, capitalised: frozenset[int]) -> frozenset[int]:
        """Indices of the capitalised tokens in a surname's place.

        After a given name of ``given_names.txt`` ("Sheila Dikshit"), or after an
        initial that starts the text or a sentence or follows a given name or another
        initial ("Philip K. Dick", "J. R. R. Tolkien"; not "Plan B. Shit"). All of it is
        decided by the words before, so a stream settles it as it goes.
        """

        def given(j: int, gap: str) -> bool:
            return gap == " " and j in capitalised and self.tokens[j].full in _GIVEN_NAMES

        def initial(j: int, gap: str) -> bool:
            token = self.tokens[j]
            if gap != ". " or token.end - token.start != 1 or token.letters:
                return False
            letter = self.text[slice(*self.original(token.start, token.end))]
            return letter.isupper() and letter.isalpha()

        found = []
        for i in capitalised:
            if i == 0:
                continue
            gap = self.norm[self.tokens[i - 1].end : self.tokens[i].start]
            if given(i - 1, gap):
                found.append(i)
            elif initial(i - 1, gap):
                if i == 1:
                    found.append(i)
                    continue
                before = self.norm[self.tokens[i - 2].end : self.tokens[i - 1].start]
                if (
                    given(i - 2, before)
                    or initial(i - 2, before)
                    or _SENTENCE_END_RE.search(before)
                ):
                    found.append(i)
        return frozenset(found)


@lru_cache(maxsize=8)
def _prepared(text: str) -> _Prepared:
    """:meth:`_Prepared.of`, kept for the few texts a stream reads again.

    A release reads the same text twice (:meth:`SafetyFilter.mask_part` and
    :meth:`SafetyFilter.restart`). Nobody changes a prepared text's lists.
    """
    return _Prepared.of(text)


# A word that mixes letters with leet digits ("h0w", "m4k3"), and what a lone digit reads as
# in a text of such words.
_LEET_WORD_RE = re.compile(r"\b(?=[a-z]*[0-9])(?=[0-9]*[a-z])[a-z0-9]{2,}\b")
_LONE_DIGITS = {"1": "i", "4": "a"}


def _unstarred(word: str, vocabulary: Sequence[str]) -> str:
    """The word with its stars read as the letters of a vocabulary word they fit.

    "b*mb" -> "bomb", "expl*sives" -> "explosives" (a word that starts like "explosi");
    a word with fewer letters than stars, or fewer than two letters, stays as it is.
    """
    stars = word.count("*")
    letters = sum(char.isalpha() for char in word)
    if not stars or letters < 2 or stars > letters:
        return word
    for candidate in vocabulary:
        if len(candidate) > len(word):
            continue
        head = word[: len(candidate)]
        if "*" in head and all(a in ("*", b) for a, b in zip(head, candidate, strict=True)):
            return candidate + word[len(candidate) :]
    return word


# What may separate the letters of a word spelled out for the harm patterns ("b o m b",
# "b  o  m  b", "b. o. m. b.", "b-o-m-b"), and the words of such a sentence ("h o w   t o").
_SPELLED_GAP_RE = re.compile(r"[ \t.\-]{1,5}")
# Three one-character words in a row: the sign of a spelled-out word, found quickly.
_SPELLED_HINT_RE = re.compile(r"(?<!\w)[^\W_][ \t.\-]{1,5}[^\W_][ \t.\-]{1,5}[^\W_](?!\w)")
# Two words joined by a hyphen ("pipe-bomb"): the harm patterns read them apart too.
_HYPHENATED_RE = re.compile(r"(?<=[a-z])-(?=[a-z])")


class _Spelled(NamedTuple):
    """A run of one-character tokens: the letters of spelled-out words."""

    start: int
    end: int
    words: list[list[int]]  # the position of each letter, word by word
    uniform: bool  # one gap throughout: the words' bounds are unknown ("m a k e a")


def _spelled_runs(norm: str, spans: Sequence[tuple[int, int]]) -> dict[int, tuple[int, _Spelled]]:
    """Runs of three or more one-character tokens, by the index of their first span.

    Letters are split into words where the gap differs from the run's usual one: "h o w
    t o" (one space in a word, three between words), "h.o.w t.o" (dots in a word).

    Returns:
        For each run, the index of its first span: the index after its last, and the run.

    """
    runs: dict[int, tuple[int, _Spelled]] = {}
    i = 0
    while i < len(spans):
        j = i
        while (
            j + 1 < len(spans)
            and spans[j][1] - spans[j][0] == 1
            and spans[j + 1][1] - spans[j + 1][0] == 1
            and norm[spans[j][0]].isalnum()
            and norm[spans[j + 1][0]].isalnum()
            and _SPELLED_GAP_RE.fullmatch(norm, spans[j][1], spans[j + 1][0])
        ):
            j += 1
        if j - i >= 2:
            gaps = [norm[spans[k][1] : spans[k + 1][0]] for k in range(i, j)]
            counts = Counter(gaps)
            usual = max(counts, key=lambda gap: (counts[gap], -len(gap)))
            words: list[list[int]] = [[spans[i][0]]]
            for k, gap in enumerate(gaps, i + 1):
                if gap != usual:
                    words.append([])
                words[-1].append(spans[k][0])
            runs[i] = (j + 1, _Spelled(spans[i][0], spans[j][1], words, len(counts) == 1))
            i = j + 1
        else:
            i += 1
    return runs


def _spelled_reading(norm: str, run: _Spelled, articles: bool) -> tuple[str, list[int]]:
    """The run's words joined ("h o w   t o" -> "how to"), each char with its position.

    With ``articles``, a one-letter word glued to a word of the run is read apart: "a b o
    m b" -> "a bomb", "m a k e a" -> "make a" (the reading without is tried too).
    """
    chars: list[str] = []
    where: list[int] = []
    for number, letters in enumerate(run.words):
        if number:
            chars.append(" ")
            where.append(letters[0] - 1)
        word = [norm[position] for position in letters]
        spots = list(letters)
        if articles and len(word) >= 4:
            if word[0] in "ai":
                word, spots = [word[0], " ", *word[1:]], [spots[0], spots[0] + 1, *spots[1:]]
            if word[-1] == "a":
                word, spots = [*word[:-1], " ", "a"], [*spots[:-1], spots[-1] - 1, spots[-1]]
        chars.extend(word)
        where.extend(spots)
    return "".join(chars), where


def _disguise_readings(
    prepared: _Prepared, vocabulary: Sequence[str]
) -> list[tuple[str, list[int]]]:
    """The folded text with its disguised words read plainly, for the harm patterns.

    Spelled-out words are joined ("b o m b", "b  o  m  b", "b. o. m. b.", "p.i.p.e" ->
    "bomb", "pipe"), a whole sentence too ("h o w   t o", "h.o.w t.o"); words joined by
    a hyphen are read apart ("pipe-bomb"); words with stars read as a harm trigger they
    fit ("b*mb" -> "bomb"); runs of three or more equal letters cut to one and, in
    another reading, to two ("bommmb" -> "bomb"; "killll" -> "kill"). Each reading comes
    with the position in the folded text of each of its characters, so a match still
    names the words as written.

    Returns:
        Up to four ``(reading, positions)`` pairs; none when no word is disguised.

    """
    readings: list[tuple[str, list[int]]] = []
    norm = prepared.norm
    spans = [m.span() for m in _TOKEN_RE.finditer(norm)]
    runs = _spelled_runs(norm, spans) if _SPELLED_HINT_RE.search(norm) else {}
    leet = len(_LEET_WORD_RE.findall(norm)) >= 2
    hyphens = {m.start() for m in _HYPHENATED_RE.finditer(norm)}
    repeats = _RUN_RE.search(norm) is not None
    if not (leet or runs or repeats or "*" in norm):
        if hyphens:  # "pipe-bomb" alone, as in many messages: the quick way
            spaced = "".join(" " if i in hyphens else char for i, char in enumerate(norm))
            readings.append((spaced, list(range(len(norm)))))
        return readings  # nothing else disguised: most messages
    # Two readings of glued articles ("m a k e a": "make a" or "makea"), each with runs of
    # a letter cut to one and (if there are any) to two.
    for articles, squeeze in itertools.product((True, False), (1, 2) if repeats else (1,)):
        if not articles and not any(run.uniform for _, run in runs.values()):
            continue
        chars: list[str] = []
        where: list[int] = []
        position = 0
        i = 0
        while i < len(spans):
            start, end = spans[i]
            between = norm[position:start]
            chars.extend(" " if position in hyphens and between == "-" else between)
            where.extend(range(position, start))
            if i in runs:
                after, run = runs[i]
                word, spots = _spelled_reading(norm, run, articles)
                end = run.end
                i = after
            else:
                i += 1
                word = norm[start:end]
                spots = list(range(start, end))
                if leet and (lone := _LONE_DIGITS.get(word)):
                    # "h0w d0 1 m4k3 4 b0mb": among leetspeak words, "1" is "i", "4" is "a".
                    word = lone
                else:
                    read = _unstarred(word, vocabulary)
                    if read != word:
                        word = read
                        spots = spots[: len(word)] + [spots[-1]] * (len(word) - len(spots))
            if _RUN_RE.search(word):
                kept = [
                    (char, spot)
                    for k, (char, spot) in enumerate(zip(word, spots, strict=True))
                    if k < squeeze or not all(word[k - n - 1] == char for n in range(squeeze))
                ]
                word, spots = "".join(c for c, _ in kept), [s for _, s in kept]
            chars.extend(word)
            where.extend(spots)
            position = end
        chars.extend(norm[position:])
        where.extend(range(position, len(norm)))
        reading = "".join(chars)
        if reading != norm and all(reading != seen for seen, _ in readings):
            readings.append((reading, where))
    return readings


# Marks that join the words of a disguised sentence: "how_do_i", "how.do.i", "how/do/i",
# "how+do+i"; read as spaces when they stand between two letters.
_WORD_JOINS = frozenset("_./+")
# An HTML tag between words: "how<b></b>do".
_TAG_RE = re.compile(r"</?[a-z][a-z0-9]{0,9}\s*/?>")
# A word of letters (and stars for letters) standing alone, not part of leetspeak.
_PLAIN_WORD_RE = re.compile(r"(?<![a-z0-9@$])[a-z*]+(?![a-z0-9@$])")
# A word of two letters doubled ("boommb") and what a star may stand for ("h*w").
_DOUBLE_RE = re.compile(r"([a-z])\1")
_STAR_LETTERS = "oaeiu"
# Words glued together ("howdoimakeapipebomb") are only split from this length on.
_GLUED_MIN = 12
_GLUED_PIECE = 5
_LONGEST_WORD = 20


def _undoubled(word: str, vocabulary: frozenset[str]) -> str | None:
    """The word with some doubled letters single, if that is a vocabulary word ("boommb")."""
    doubles = list(_DOUBLE_RE.finditer(word))[:4]
    for keep in itertools.product((False, True), repeat=len(doubles)):
        cut = {m.start() for m, kept in zip(doubles, keep, strict=True) if not kept}
        variant = "".join(char for i, char in enumerate(word) if i not in cut)
        if variant != word and variant in vocabulary:
            return variant
    return None


def _starfilled(word: str, vocabulary: frozenset[str]) -> str | None:
    """The word with its stars read as vowels, if that is a vocabulary word ("h*w", "d*")."""
    stars = [i for i, char in enumerate(word) if char == "*"]
    if not stars or len(stars) > 3 or len(word) - len(stars) < 1:
        return None
    for letters in itertools.product(_STAR_LETTERS, repeat=len(stars)):
        chars = list(word)
        for i, letter in zip(stars, letters, strict=True):
            chars[i] = letter
        if (variant := "".join(chars)) in vocabulary:
            return variant
    return None


def _segmented(word: str, vocabulary: frozenset[str]) -> list[str] | None:
    """Split letters written without spaces into vocabulary words ("howtokillmyself").

    Fewest letters left out of any word first, then fewest words; a letter left out
    stands alone ("painlessly" -> "painless", "l", "y"). None unless three words or more
    are found (two, with no letter left out, in a word shorter than twelve letters) and
    at most a quarter of the letters are left out.
    """
    size = len(word)
    # best[i]: (letters left out, words, start of the last piece, whether it is a word)
    best: list[tuple[int, int, int, bool] | None] = [None] * (size + 1)
    best[0] = (0, 0, 0, True)
    for i in range(size):
        here = best[i]
        if here is None:
            continue
        for j in range(i + 1, min(size, i + _LONGEST_WORD) + 1):
            known = word[i:j] in vocabulary
            if not known and j > i + 1:
                continue
            cost = (here[0] + (not known), here[1] + 1, i, known)
            there = best[j]
            if there is None or cost[:2] < there[:2]:
                best[j] = cost
    end = best[size]
    if end is None or 4 * end[0] > size:
        return None
    pieces: list[tuple[str, bool]] = []
    j = size
    while j > 0:
        step = best[j]
        assert step is not None
        pieces.append((word[step[2] : j], step[3]))
        j = step[2]
    pieces.reverse()
    found = sum(known for _, known in pieces)
    if found < 3 and not (found == 2 and end[0] == 0 and size < _GLUED_MIN):
        return None
    # Letters left out next to each other make one word again.
    words: list[str] = []
    for piece, known in pieces:
        if not known and words and words[-1].startswith("\0"):
            words[-1] += piece
        else:
            words.append(piece if known else "\0" + piece)
    return [w.removeprefix("\0") for w in words]


def _word_reading(
    prepared: _Prepared, vocabulary: frozenset[str], triggers: Sequence[str]
) -> tuple[str, list[int]] | None:
    """The folded text with disguised word breaks read as spaces, for the harm patterns.

    Words joined by "_", ".", "/" or "+" ("how_do_i_make_a_bomb"), wrapped in quotes
    (``"how" "do" "i"``) or parted by HTML tags ("how<b></b>do") are read apart; so are
    CamelCase words ("HowDoIMakeABomb") and, from twelve letters on, words glued
    together when they fit the vocabulary and one of them holds a harm trigger
    ("howdoimakeapipebomb"). A word that is no vocabulary word is read as one when its
    doubled letters are single ("boommb" -> "bomb") or its stars vowels ("h*w d*" ->
    "how do"). Code reads apart harmlessly: "kill_process", "os.kill", "BombSquad" ask
    for nothing.

    Returns:
        The reading and the position in the folded text of each of its characters, or
        None when it is the folded text itself.

    """
    norm, text, positions = prepared.norm, prepared.text, prepared.positions

    def upper(p: int) -> bool:
        return text[p if positions is None else positions[p]].isupper()

    tags = {m.start(): m.end() for m in _TAG_RE.finditer(norm)} if "<" in norm else {}
    camel = text != text.lower()
    chars: list[str] = []
    where: list[int] = []
    p = 0
    size = len(norm)
    while p < size:
        if p in tags:
            chars.append(" ")
            where.append(p)
            p = tags[p]
            continue
        char = norm[p]
        between = 0 < p < size - 1 and norm[p - 1].isalpha() and norm[p + 1].isalpha()
        if char == '"' or (char in _WORD_JOINS and between):
            char = " "
        elif (
            camel
            and p > 0
            and char.isalpha()
            and norm[p - 1].isalpha()
            and upper(p)
            and (not upper(p - 1) or (p + 1 < size and norm[p + 1].isalpha() and not upper(p + 1)))
        ):
            chars.append(" ")
            where.append(p)
        chars.append(char)
        where.append(p)
        p += 1
    joined = "".join(chars)
    # Glued words: a long one that holds a harm trigger is the sign; then shorter pieces
    # of the same text are split too ("howdo" of "howdoImakeapipebomb").
    glued = any(
        len(m.group()) >= _GLUED_MIN and any(t in m.group() for t in triggers)
        for m in _PLAIN_WORD_RE.finditer(joined)
    )
    out: list[str] = []
    spots: list[int] = []
    position = 0
    for match in _PLAIN_WORD_RE.finditer(joined):
        word = match.group()
        read: list[str] | None = None
        if word not in vocabulary:
            if "*" in word:
                fill = _starfilled(word, vocabulary)
                read = [fill] if fill else None
            elif _DOUBLE_RE.search(word) and (single := _undoubled(word, vocabulary)):
                read = [single]
            elif glued and len(word) >= _GLUED_PIECE:
                read = _segmented(word, vocabulary)
        if read is None:
            continue
        start, end = match.span()
        out.append(joined[position:start])
        spots.extend(where[position:start])
        first = where[start]
        for number, piece in enumerate(read):
            if number:
                out.append(" ")
                spots.append(first)
            out.append(piece)
            # A shorter reading points each letter at the word's letters in turn.
            spots.extend(where[min(start + k, end - 1)] for k in range(len(piece)))
            start += len(piece)
            first = where[min(start, end - 1)]
        position = end
    out.append(joined[position:])
    spots.extend(where[position:])
    reading = "".join(out)
    return None if reading == norm else (reading, spots)


def read_leet(word: str) -> str:
    """A word with each leetspeak symbol read as its first letter: "k1ll" kill, "17" it.

    No folding and no check that it is leetspeak: the caller decides that ("17" is a
    number in most sentences; :func:`plain_text` reads only words that mix letters in).
    """
    return word.translate(_LEET).translate(_FIRST_READING)


def plain_text(text: str) -> str:
    """The text as a reader would read it, for models that compare meanings.

    Folded (lower case, no accents, look-alike letters read as Latin ones), leetspeak
    undone in words that mix letters and digits ("b0mb"), and spelled-out words joined
    ("f u c k", "h.a.c.k"). The embedding model sees "how to hack" rather than letters.

    Args:
        text: A message.

    Returns:
        The plain form (its length may differ from the text's).

    """
    norm = _normalise(text)[0]
    parts: list[str] = []
    position = 0
    for token in _tokenise(norm):
        if token.letters:
            parts.append(norm[position : token.start])
            parts.append(token.word)
            position = token.end
    parts.append(norm[position:])

    def deleet(match: re.Match[str]) -> str:
        word = match.group()
        if not (_LETTER_RE.search(word) and _LEETISH_RE.search(word)):
            return word
        return word.strip(_EDGE_SYMBOLS).translate(_LEET).translate(_FIRST_READING) or word

    return _TOKEN_RE.sub(deleet, "".join(parts)).replace(SCRIPT_BREAK, " ")


# A gap a listed phrase ("bull - shit"), a spelled-out word ("f.u.c.k"), a code
# ("A55-B00B5") or a name ("K. Dick") may span; any other gap ends what came before it.
_JOINING_GAP_RE = re.compile(r"[\s\-./:]{0,3}")


def _breaks(gap: str) -> bool:
    """Tell whether a gap between words is one nothing that is masked spans."""
    return _JOINING_GAP_RE.fullmatch(gap) is None


def _single_letter(norm: str, span: tuple[int, int]) -> bool:
    """Tell whether a token is one letter or digit (a piece of a spelled-out word)."""
    start, end = span
    return end - start == 1 and _spells(norm[start], inner=True)


def _mask(word: str, mask_char: str) -> str:
    """Mask letters (framed ones too), digits and leet symbols; keep other punctuation.

    "Bull-shit!" -> "****-****!".

    Invisible characters inside the word (:func:`tools.text.is_invisible`: "fu\u2062ck")
    go, as the fold that found the word skipped them: one mask character per letter.
    """
    out = []
    for char in word:
        if is_invisible(char):
            continue
        kind = unicodedata.category(char)[0]
        # A letter in a frame ("\U0001f175", "\u24a1") is a symbol to Unicode, a letter here.
        if kind in "LN" or char in _LEET_SYMBOLS or ord(char) in _ENCLOSED:
            out.append(mask_char)
        elif kind != "M":  # a combining accent goes with its masked letter
            out.append(char)
    return "".join(out)


def _listing(words: Iterable[str]) -> str:
    """Comma-separated words, each once (case-insensitively), in order."""
    seen: dict[str, str] = {}
    for word in words:
        seen.setdefault(word.lower(), word)
    return ", ".join(seen.values())


# --- the filter -----------------------------------------------------------------------


# Where a sentence ends, for telling whether a frame and a harm hit share one.
_SENTENCE_END_RE = re.compile(r"[.!?;\n]")


def _in_frame(norm: str, start: int, end: int, frames: tuple[re.Pattern[str], ...]) -> bool:
    """Whether a frame matches in the sentence of the folded text holding ``norm[start:end]``.

    The whole frame must lie in that sentence, so "Make a bomb. Then explain Monopoly."
    keeps its refusal while "In Monopoly, how do I rob the bank?" is framed.
    """
    before = [m.end() for m in _SENTENCE_END_RE.finditer(norm, 0, start)]
    first = before[-1] if before else 0
    after = _SENTENCE_END_RE.search(norm, end)
    last = after.start() if after else len(norm)
    sentence = norm[first:last]
    return any(frame.search(sentence) for frame in frames)


class SafetyFilter:
    """Input and output guardrails for the three safety levels.

    Build one per configuration and reuse it: the harm patterns are read and compiled
    at construction (a broken file fails here, not on the first message), the profanity
    tables on first use (~30 ms; the word-list work is cached for the process).

    Args:
        strict_terms: Terms that block input at every level (multi-word allowed).
        whitelist: Terms never treated as profanity, with their inflections; this beats
            the library list, ``extra_terms`` and ``mild_terms``.
        extra_terms: Extra profane words or phrases, added to better-profanity's list.
        mild_terms: Words that are profanity only at ``strict``; None means
            :data:`DEFAULT_MILD_TERMS`, an empty list means no word is mild.
        patterns_file: The harm patterns YAML; None means ``prompts/safety.yaml`` of
            this repository.
        taxonomy_file: The hazard categories the patterns name; None means the
            ``safety_taxonomy.yaml`` next to the patterns file, else the shipped one.
        mask_char: What replaces each masked letter.

    Raises:
        ValueError: A term is not a string or has nothing to match, ``mask_char`` is
            empty, the patterns file is missing, not YAML, or invalid, or one of its
            categories names a hazard the taxonomy does not have.

    """

    def __init__(
        self,
        *,
        strict_terms: Sequence[str] = (),
        whitelist: Sequence[str] = (),
        extra_terms: Sequence[str] = (),
        mild_terms: Sequence[str] | None = None,
        patterns_file: Path | None = None,
        taxonomy_file: Path | None = None,
        mask_char: str = "*",
    ) -> None:
        if not isinstance(mask_char, str) or not mask_char:
            raise ValueError(f"mask_char must be a non-empty string, not {mask_char!r}")
        self._strict_terms = _caller_terms("strict_terms", strict_terms)
        self._whitelist = _caller_terms("whitelist", whitelist)
        self._extra_terms = _caller_terms("extra_terms", extra_terms)
        self._mild_terms = _caller_terms(
            "mild_terms", DEFAULT_MILD_TERMS if mild_terms is None else mild_terms
        )
        self._mask_char = mask_char
        self.patterns_file = Path(patterns_file or DEFAULT_PATTERNS_FILE)
        self._harm = harm_categories(self.patterns_file)
        self._frames = non_literal_frames(self.patterns_file)
        if taxonomy_file is None:
            sibling = self.patterns_file.parent / DEFAULT_TAXONOMY_FILE.name
            taxonomy_file = sibling if sibling.is_file() else DEFAULT_TAXONOMY_FILE
        self.taxonomy = load_taxonomy(taxonomy_file)
        for category in self._harm:
            if category.hazard not in self.taxonomy:
                raise ValueError(
                    f"safety patterns file {self.patterns_file}: category {category.key!r} "
                    f"names hazard {category.hazard!r}, which {taxonomy_file} does not have "
                    f"(known: {', '.join(self.taxonomy.keys)})"
                )

    @property
    def harm_categories(self) -> dict[str, str]:
        """Harm category keys of the patterns file and their reasons, in file order."""
        return {category.key: category.reason for category in self._harm}

    @cached_property
    def _lexicons(self) -> dict[str, _Lexicon]:
        """Profanity tables by level, and the strict-terms table."""
        whitelist = frozenset(_expand_all(self._whitelist))
        # Whitelisted phrases ("dick van dyke") are skipped as a whole, like built-in ones.
        safe = frozenset(
            key for key in itertools.chain(whitelist, _innocent_phrase_keys()) if " " in key
        )
        mild = {k: b for k, b in _expand_all(self._mild_terms).items() if k not in whitelist}
        slurs = {k: b for k, b in _slur_keys().items() if k not in whitelist}
        profane = {
            key: base
            for key, base in itertools.chain(
                _library_keys().items(), slurs.items(), _expand_all(self._extra_terms).items()
            )
            if key not in mild and key not in whitelist
        }
        moderate = _Lexicon.build(profane, roots=True, exempt=whitelist, safe=safe)
        return {
            "strict": _Lexicon.build({**profane, **mild}, roots=True, exempt=whitelist, safe=safe),
            "moderate": moderate,
            "relaxed": moderate,
            "strict_terms": _Lexicon.build(_expand_all(self._strict_terms)),
            "slurs": _Lexicon.build(slurs, safe=safe),
        }

    def find_profanity(self, text: str, level: SafetyLevel) -> list[str]:
        """Every profane word or phrase of the text at a level.

        Args:
            text: Any text; it is folded (NFKC, lower case, straight quotes) first.
            level: At ``strict`` mild words count too.

        Returns:
            The matches as they appear in the text, in order, repeats included.

        Raises:
            ValueError: For an unknown level.

        """
        lexicon = self._lexicons[validate_level(level)]
        prepared = _Prepared.of(text)
        return [text[s:e] for s, e in prepared.find(lexicon)]

    def check_input(self, text: str, level: str) -> SafetyVerdict:
        """Decide whether a user message may reach the model.

        In order: serious-harm patterns (every level; category = the harm key), then
        ``strict_terms`` (every level; category ``"strict_term"``), then profanity (blocks
        at ``strict`` only; category ``"profanity"``).

        An allowed verdict has ``reason`` and ``category`` None, but its ``matches`` list
        the profanity seen, which ``moderate`` and ``relaxed`` let through.

        Args:
            text: The user's message.
            level: ``"strict"``, ``"moderate"`` or ``"relaxed"``.

        Returns:
            The verdict.

        Raises:
            ValueError: For an unknown level.

        """
        checked = validate_level(level)
        prepared = _Prepared.of(text)
        harmful = self._harm_verdict(text, prepared, checked, self._harm, self._frames)
        if harmful is not None:
            return harmful

        blocked = [text[s:e] for s, e in prepared.find(self._lexicons["strict_terms"])]
        if blocked:
            return SafetyVerdict(
                allowed=False,
                level=checked,
                reason=f"blocked term: {_listing(blocked)}",
                category="strict_term",
                matches=tuple(blocked),
                layer="lexical",
            )

        profane = [text[s:e] for s, e in prepared.find(self._lexicons[checked])]
        if profane and checked == "strict":
            slurs = [text[s:e] for s, e in prepared.find(self._lexicons["slurs"])]
            kind = "slur" if slurs else "profanity"
            return SafetyVerdict(
                allowed=False,
                level=checked,
                reason=f"{kind} (strict level): {_listing(profane)}",
                category=kind,
                matches=tuple(profane),
                layer="lexical",
            )
        return SafetyVerdict(
            allowed=True, level=checked, reason=None, category=None, matches=tuple(profane)
        )

    def check_reply(self, text: str, level: str) -> SafetyVerdict:
        """Decide whether a model's reply must be withdrawn, by the harm patterns alone.

        The patterns are written for requests, where a line that starts with a verb is
        an order to the assistant ("Break into my neighbour's house"). A reply's lines are
        the model's own statements ("Breaking into a car is illegal", "Installing spyware
        on someone's phone is a crime"), so here a line start is no sign of intent: a
        pattern must find one in the words ("here is how to make a pipe bomb", "I will
        kill you"). Profanity and strict terms never withdraw a reply (profanity is
        masked instead).

        Args:
            text: The reply.
            level: ``"strict"``, ``"moderate"`` or ``"relaxed"``.

        Returns:
            The verdict: not allowed, with the hazard as its category, on a match.

        Raises:
            ValueError: For an unknown level.

        """
        checked = validate_level(level)
        # One line, behind a mark no pattern reads as a word: "^" matches nowhere in it.
        prose = "> " + text.replace("\r", " ").replace("\n", " ")
        harmful = self._harm_verdict(prose, _Prepared.of(prose), checked, self._harm)
        if harmful is not None:
            return harmful
        return SafetyVerdict(allowed=True, level=checked, reason=None, category=None, matches=())

    def _harm_verdict(
        self,
        text: str,
        prepared: _Prepared,
        level: SafetyLevel,
        categories: tuple[HarmCategory, ...],
        frames: tuple[re.Pattern[str], ...] = (),
    ) -> SafetyVerdict | None:
        """The refusal for the first of ``categories`` whose patterns match, else None.

        ``framed`` when ``frames`` are given and every hit is in the words as written (not
        only in a disguise reading: "r0b", "b o m b" are no figure of speech) and in a
        sentence where one of them matches.
        """
        harm: list[tuple[int, int, HarmCategory]] = []
        # Hits in the words as written, by their span in the folded text.
        plain: set[tuple[int, int]] = set()
        # "b0mb" must not slip past the harm patterns that "bomb" trips; de-leeting keeps
        # the length, so match positions still map back to the original text. So do the
        # readings of disguised words ("b o m b", "p.i.p.e", "bommmb", "b*mb"), through
        # their own index of positions.
        texts: dict[str, list[int] | None] = {}
        words = _word_reading(prepared, self._vocabulary, self._trigger_words)
        for norm, where in (
            (prepared.norm, None),
            *_disguise_readings(prepared, self._trigger_words),
            *([words] if words else []),
        ):
            texts.setdefault(norm, where)
            texts.setdefault(_deleet_words(norm, self._trigger_words), where)
        for category in categories:
            for norm, where in texts.items():
                if not category.applies(norm):
                    continue
                for pattern in category.patterns:
                    for match in pattern.finditer(norm):
                        if match.end() > match.start():
                            start, end = match.span()
                            if where is not None:
                                start, end = where[start], where[end - 1] + 1
                            elif norm == prepared.norm:
                                plain.add((start, end))
                            harm.append((start, end, category))
        # Two patterns may match the same words; report them once.
        harm = list({(s, e): (s, e, c) for s, e, c in harm}.values())
        if harm:
            harm.sort(key=lambda hit: (hit[0], hit[1]))
            hit_keys = {category.key for _, _, category in harm}
            hit_categories = [c for c in categories if c.key in hit_keys]
            matches = [text[slice(*prepared.original(s, e))].strip() for s, e, _ in harm]
            return SafetyVerdict(
                allowed=False,
                level=level,
                reason="serious harm: " + ", ".join(c.reason for c in hit_categories),
                category=hit_categories[0].hazard,
                matches=tuple(matches),
                rule=hit_categories[0].key,
                layer="lexical",
                framed=bool(frames)
                and all(
                    (s, e) in plain and _in_frame(prepared.norm, s, e, frames) for s, e, _ in harm
                ),
            )
        return None

    @cached_property
    def _vocabulary(self) -> frozenset[str]:
        """Words a disguised sentence is read into (:func:`_word_reading`).

        The common words of ``lexicon/common_words.txt`` and every word of two letters
        or more written in the harm patterns ("how", "make", "pipe", "myself").
        """
        words = set(_COMMON_WORDS)
        for category in self._harm:
            for pattern in category.patterns:
                words.update(re.findall(r"[a-z]{2,}", re.sub(r"\\.", " ", pattern.pattern)))
        return frozenset(words)

    @cached_property
    def _trigger_words(self) -> tuple[str, ...]:
        """The harm triggers that are words of four letters or more, longest first.

        What a word with stars in it ("b*mb", "expl*sives") is read as, when its letters
        fit one of them.
        """
        words = {
            trigger
            for category in self._harm
            for trigger in category.triggers
            if len(trigger) >= 4 and trigger.isalpha()
        }
        return tuple(sorted(words, key=lambda word: (-len(word), word)))

    def settled(self, text: str, level: str) -> int:
        """How much of a reply still being written is masked for good.

        For a text that may go on (a reply streaming in), the largest ``n`` such that the
        words masked in ``text[:n]`` stay masked, and the others unmasked, whatever the
        rest turns out to be (:meth:`mask_part` masks that part in the light of the text
        before it). What is held back: the unfinished last word, a spelled-out word that
        may go on ("f u c"), the last complete word, and after a word that may start a
        listed phrase as many words as the longest one has ("bull" may become "bull
        shit"); not what follows a gap no listed phrase or
        spelled-out word spans ("...", an emoji, a new paragraph), and never a word longer
        than :data:`MAX_WORD` characters, which is no listed word. Never inside a listed
        or innocent phrase, nor between two letters of a spelled-out word.

        Args:
            text: The reply so far.
            level: ``"strict"``, ``"moderate"`` or ``"relaxed"``.

        Returns:
            An index into ``text`` (0: nothing is settled yet).

        Raises:
            ValueError: For an unknown level.

        """
        checked = validate_level(level)
        if checked == "relaxed":
            return len(text)
        lexicon = self._lexicons[checked]
        prepared = _prepared(text)
        norm = prepared.norm
        spans = [m.span() for m in _TOKEN_RE.finditer(norm)]
        # Where the unsettled tail starts (in the folded text): the word being written,
        # and before it the letters of a spelled-out word that may still go on ("f u c").
        unsettled, first = len(norm), len(spans)
        if spans and spans[-1][1] == len(norm):
            first -= 1
            unsettled = spans[first][0]
            if spans[first][1] - spans[first][0] > MAX_WORD:
                # No word, however it ends: settled as it comes, and so is all before it
                # (no phrase or spelled-out word takes in such a token).
                return len(text)
        if first == len(spans) or _single_letter(norm, spans[first]):
            end = unsettled
            while (
                first > 0
                and _single_letter(norm, spans[first - 1])
                and norm[spans[first - 1][1] : end] in _SPELLING_GAPS
            ):
                first -= 1
                unsettled = end = spans[first][0]
        tokens = [t for t in prepared.tokens if t.end <= unsettled]
        # What comes after the last settled word (or, with none, all before the tail) is
        # final when nothing that is masked spans the gap before it: no mask starts in a
        # gap, and a word after a gap that ends all before it is masked as a first word.
        if not tokens or _breaks(norm[tokens[-1].end : unsettled]):
            return (
                len(text)
                if unsettled == len(norm)
                else prepared.original(unsettled, unsettled + 1)[0]
            )
        phrases: list[tuple[int, int]] = []
        lexicon.scan(norm, tokens, phrases, words=False)
        # A cut before token i needs every phrase that may start before it to be known:
        # the max_words - 1 tokens after it are settled, or a gap nothing spans is there,
        # or no word that may reach it could start a phrase (scan starts phrases only at
        # a phrase_starts word, so other words are released without waiting).
        for i in range(len(tokens) - 1, 0, -1):
            previous, token = tokens[i - 1], tokens[i]
            if _breaks(norm[previous.end : token.start]):
                return prepared.original(token.start, token.end)[0]
            if i > len(tokens) - lexicon.max_words + 1 and any(
                tokens[j].core in lexicon.phrase_starts
                for j in range(max(0, i - lexicon.max_words + 1), i)
            ):
                continue
            if any(first < i <= end for first, end in phrases):
                continue
            if (
                not previous.letters
                and not token.letters
                and _single_letter(norm, (previous.start, previous.end))
                and _single_letter(norm, (token.start, token.end))
                and norm[previous.end : token.start] in _SPELLING_GAPS
            ):
                continue  # one spelled-out word, cut differently, would join differently
            if _hangs_on_next(norm, previous, token):
                continue
            return prepared.original(token.start, token.end)[0]
        return 0

    def mask_part(self, text: str, level: str, start: int, end: int) -> MaskResult:
        """Mask ``text[start:end]`` as it is masked in the whole reply.

        For a stream: ``text[:start]`` was shown already (it is the context: a word
        before may make a name a surname, a long word goes on), and ``end`` is what
        :meth:`settled` allows. The parts joined equal :meth:`mask_output` of the whole.

        Args:
            text: The reply so far (or its last part, from the start of a word).
            level: ``"strict"``, ``"moderate"`` or ``"relaxed"``.
            start: Where the part starts.
            end: Where it ends.

        Returns:
            The part masked, and the words masked in it.

        Raises:
            ValueError: For an unknown level.

        """
        checked = validate_level(level)
        if checked == "relaxed":
            return MaskResult(text=text[start:end], masked=())
        spans = _prepared(text[:end]).find(self._lexicons[checked])
        # A span that began before the part was settled with it; one that reaches into
        # the part anyway is masked from the part's start (never shown unmasked).
        spans = [(max(s, start), e) for s, e in spans if e > start]
        return self._masked(text, spans, start, end)

    def restart(self, text: str) -> int:
        """Where a stream may start the text it keeps, and read what follows as a whole reply.

        The start of the word before the last point in ``text`` that no reading looks
        across: a gap no listed phrase, spelled-out word, code or name spans ("...",
        ", ", an emoji; see :func:`_breaks`), or the place between a Chinese or Japanese
        character and the word next to it. What comes after such a point is read alone,
        except that a word is there before it (the word after it is no first word:
        "K. Dick" reads as a surname only at the start of a text or a sentence), so
        :meth:`settled` and :meth:`mask_part` read it in ``text[restart:]`` as in the
        whole reply. Without such a point, 0.

        Args:
            text: The reply so far, up to where it is shown.

        Returns:
            An index into ``text``.

        """
        prepared = _prepared(text)
        norm, tokens = prepared.norm, prepared.tokens
        for i in range(len(tokens) - 1, 0, -1):
            before, after = tokens[i - 1], tokens[i]
            gap = norm[before.end : after.start]
            if (
                # A script break is not counted: it depends on the text around it.
                (gap and SCRIPT_BREAK not in gap and _breaks(gap))
                or (
                    not gap
                    and (
                        _UNSPACED_RE.fullmatch(norm, before.start, before.end) is not None
                        or _UNSPACED_RE.fullmatch(norm, after.start, after.end) is not None
                    )
                )
            ):
                return prepared.original(before.start, before.end)[0]
        return 0

    def mask_output(self, text: str, level: str) -> MaskResult:
        """Mask profanity in a model reply.

        ``strict`` masks profanity and mild words, ``moderate`` profanity only,
        ``relaxed`` nothing. Each letter, digit or leet symbol of a matched word becomes
        ``mask_char``; spaces, hyphens and the punctuation around it stay
        ("Bull-shit!" -> "****-****!"), and so does every other word.

        Args:
            text: The reply.
            level: ``"strict"``, ``"moderate"`` or ``"relaxed"``.

        Returns:
            The masked text and the words that were masked.

        Raises:
            ValueError: For an unknown level.

        """
        checked = validate_level(level)
        if checked == "relaxed":
            return MaskResult(text=text, masked=())
        spans = _Prepared.of(text).find(self._lexicons[checked])
        return self._masked(text, spans, 0, len(text))

    def _masked(
        self, text: str, spans: Sequence[tuple[int, int]], start: int, end: int
    ) -> MaskResult:
        """``text[start:end]`` with the ``spans`` (inside it, in order) masked."""
        if not spans:
            return MaskResult(text=text[start:end], masked=())
        parts: list[str] = []
        position = start
        for span_start, span_end in spans:
            parts.append(text[position:span_start])
            parts.append(_mask(text[span_start:span_end], self._mask_char))
            position = span_end
        parts.append(text[position:end])
        return MaskResult(text="".join(parts), masked=tuple(text[s:e] for s, e in spans))
