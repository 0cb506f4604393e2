"""Look-alike letters from any script, read as the Latin letter they imitate.

The table comes from Unicode's confusables data (UTS #39, ``confusables.txt``) as the
``confusable-homoglyphs`` package ships it (MIT), not from a hand-picked list: "sh\u0131t"
(dotless i), "\u0455h\u0456t" (Cyrillic), "\u13aa" (Cherokee) and letters of two dozen
other scripts all fold. Only letters are folded (a symbol such as "\u2223" is no letter
inside a word), and only to one ASCII letter, so the folded text keeps its length and
the filter's offsets into the original text stay right.

Letters in a circle, a square, parentheses, a tortoise-shell bracket, and the regional
indicators ("\U0001f175\U0001f184\U0001f172\U0001f17a", "\u24a1", "\U0001f1eb") are
read by :func:`read_framed_letters`, before the text is folded: NFKC turns a
parenthesized letter into three characters ("(f)"), and leaves the negative circled and
squared ones and the regional indicators as they are.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache

from tools.text import fold_char

__all__ = [
    "capital_lookalikes",
    "enclosed_letters",
    "latin_lookalikes",
    "read_capitals",
    "read_framed_letters",
]


def _is_letter(char: str) -> bool:
    # Letters, and letter-like numerals (Roman numeral "\u217c" reads "l").
    category = unicodedata.category(char)
    return category.startswith("L") or category == "Nl"


@lru_cache(maxsize=1)
def latin_lookalikes() -> dict[int, str]:
    """Translate table: a folded non-ASCII letter -> the lower-case ASCII letter it imitates.

    Keys are characters as :func:`tools.text.fold_char` leaves them (the filter folds
    text first, so "\u0410" arrives as "\u0430"). A character that is itself folded wins
    over a capital that folds to it, and a lower-case reading over an upper-case one.

    Raises:
        RuntimeError: confusable-homoglyphs is not installed.

    """
    try:
        from confusable_homoglyphs import confusables
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError(
            "confusable-homoglyphs is not installed: pip install confusable-homoglyphs==3.3.1"
        ) from exc
    data: dict[str, list[dict[str, str]]] = confusables.confusables_data
    table: dict[int, str] = {}
    for exact in (True, False):
        for char, glyphs in data.items():
            if len(char) != 1 or char.isascii():
                continue
            folded = fold_char(char)
            if len(folded) != 1 or folded.isascii() or (folded == char) != exact:
                continue
            if not _is_letter(folded):
                continue
            letters = [letter for g in glyphs if (letter := _glyph_letter(g["c"]))]
            if not letters:
                continue
            lower = [letter for letter in letters if letter.islower()]
            table.setdefault(ord(folded), (lower or letters)[0].lower())
    table.update(_named_letters(table))
    table.update(_through_others(data, table))
    return table


def _glyph_letter(glyph: str) -> str | None:
    """The one ASCII letter a prototype is, marks aside ("n\u0329" -> "n"), or None.

    Unicode files some letters under a Latin letter with a mark: Greek small eta under
    "n" with a vertical line below. Read without its mark, as the filter reads accents,
    so "\u03b7" reads "n" as it looks, not "h" as its capital does.
    """
    base = "".join(char for char in glyph if not unicodedata.combining(char))
    return base if len(base) == 1 and base.isascii() and base.isalpha() else None


# "LATIN LETTER SMALL CAPITAL F", "MODIFIER LETTER SMALL CAPITAL N", "LATIN CAPITAL LETTER
# SMALL CAPITAL I": a Latin letter in another form, named after the letter it is.
_NAMED_LETTER_RE = re.compile(
    r"(?:LATIN|MODIFIER) (?:[A-Z]+ )*?(?:SMALL CAPITAL|CAPITAL|SMALL) ([A-Z])"
)
# Planes 0 and 1 without ideographs, Hangul syllables, surrogates and private use: tens
# of thousands of code points with no Latin letter among them (skipped to start quicker).
_MAY_BE_LATIN = (range(0x80, 0x3400), range(0xA000, 0xAC00), range(0xF900, 0x20000))


def _named_letters(table: dict[int, str]) -> dict[int, str]:
    """Latin letters in another form that the confusables data leaves out, by their names.

    UTS #39 files a character as confusable only with a look-alike of the same shape, and
    a small capital is neither a capital nor a small letter: "\ua730" (small capital F),
    "\u0274" (N) and "\ua7af" (Q) have no entry in ``confusables.txt`` at all, and no
    NFKC decomposition either (their modifier forms, "\u1db0", decompose to them). Their
    Unicode names say which letter they are, so every Latin small capital and modifier
    letter is read as its letter; fullwidth letters and mathematical alphanumerics need
    nothing here (NFKC folds them). Only ``table``'s gaps are filled.
    """
    found: dict[int, str] = {}
    for code in itertools.chain.from_iterable(_MAY_BE_LATIN):
        char = chr(code)
        name = unicodedata.name(char, "")
        if "LETTER" not in name or not (match := _NAMED_LETTER_RE.fullmatch(name)):
            continue
        folded = fold_char(char)
        if len(folded) == 1 and not folded.isascii() and ord(folded) not in table:
            found.setdefault(ord(folded), match.group(1).lower())
    return found


# How many look-alike steps a letter may be from the Latin letter it reads as.
_MAX_STEPS = 3


def _through_others(data: dict[str, list[dict[str, str]]], table: dict[int, str]) -> dict[int, str]:
    """Letters that imitate a Latin one through other look-alikes, for ``table``'s gaps.

    Unicode files each character under one prototype, not always a Latin letter: the
    small capital "\u1d0b" is filed under "\u0138" (kra), kra under Cyrillic "\u043a",
    whose capital is "K"; "\u029c" under Cyrillic "\u043d", whose capital is "H";
    Greek "\u03b7" under "n" with a mark below. Read as a chain (letters folded, so a
    capital and its small letter are one), each reaches a Latin letter in a few steps.
    Only an unambiguous reading is kept: the one Latin letter nearest in steps.
    """
    edges: dict[str, set[str]] = {}
    for char, glyphs in data.items():
        if len(char) != 1:
            continue
        a = fold_char(char)
        for glyph in glyphs:
            # A look-alike with a mark ("n\u0329") reads as its letter.
            b = "".join(map(fold_char, glyph["c"]))
            if len(a) != 1 or len(b) != 1 or a == b:
                continue
            edges.setdefault(a, set()).add(b)
            edges.setdefault(b, set()).add(a)
    found: dict[int, str] = {}
    for start in edges:
        if start.isascii() or ord(start) in table or not _is_letter(start):
            continue
        seen, layer = {start}, {start}
        for _ in range(_MAX_STEPS):
            reached = {n for node in layer for n in edges.get(node, ()) if n not in seen}
            latin = {n for n in reached if n.isascii() and n.isalpha()}
            latin |= {table[ord(n)] for n in reached if ord(n) in table}
            if latin:
                if len(latin) == 1:
                    found[ord(start)] = latin.pop()
                break
            # Only through letters: a digit or a symbol is no letter's look-alike.
            layer = {n for n in reached if not n.isascii() and _is_letter(n)}
            seen |= layer
    return found


@lru_cache(maxsize=1)
def capital_lookalikes() -> dict[int, str]:
    """Translate table: a capital that imitates another Latin letter than its small letter.

    Folding case first would read Greek capital eta "\u0397" (an H) as its small letter
    "\u03b7" (an n), capital nu "\u039d" (an N) as "\u03bd" (a v), capital upsilon
    "\u03a5" (a Y) as "\u03c5" (a u): "\u0397\u039f\u03a5" would read "nou", not
    "hoy". Such a capital, and its mathematical forms, maps to the upper-case ASCII letter
    its own confusables entry gives (the fold then makes it small), one character for one.
    Capital I's forms are left out: UTS #39 files "I" under "l", and the fold's "i" is
    the letter they are.

    Raises:
        RuntimeError: confusable-homoglyphs is not installed.
    """
    table = latin_lookalikes()
    from confusable_homoglyphs import confusables  # installed: latin_lookalikes checked

    data: dict[str, list[dict[str, str]]] = confusables.confusables_data
    found: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii() or not char.isupper() or not _is_letter(char):
            continue
        own = [letter for g in glyphs if (letter := _glyph_letter(g["c"]))]
        if not own or not own[0].isupper() or own[0] == "I" or own[0].lower() == "l":
            continue
        folded = fold_char(char)
        if len(folded) != 1:
            continue
        read = folded if folded.isascii() else table.get(ord(folded))
        if read != own[0].lower():
            found[ord(char)] = own[0]
    return found


def read_capitals(text: str) -> str:
    """``text`` with every capital of :func:`capital_lookalikes` as its ASCII capital.

    Applied before case folding, one character for one, so offsets hold.
    """
    return text.translate(capital_lookalikes())


# "NEGATIVE SQUARED LATIN CAPITAL LETTER F", "PARENTHESIZED LATIN SMALL LETTER F",
# "CIRCLED ITALIC LATIN CAPITAL LETTER C", "TORTOISE SHELL BRACKETED LATIN CAPITAL LETTER
# S", "REGIONAL INDICATOR SYMBOL LETTER F": a Latin letter in a frame, named after it.
_ENCLOSED_LETTER_RE = re.compile(
    r"(?:[A-Z]+ )*?(?:CIRCLED|SQUARED|PARENTHESIZED|BRACKETED|REGIONAL INDICATOR SYMBOL)"
    r"(?: [A-Z]+)*? LETTER ([A-Z])"
)


@lru_cache(maxsize=1)
def enclosed_letters() -> dict[int, str]:
    """Translate table: a Latin letter in a frame -> the lower-case ASCII letter it is.

    Every circled, squared, negative (white on black) circled and squared, parenthesized
    and tortoise-shell-bracketed Latin letter of Unicode (the Enclosed Alphanumerics
    blocks), and the 26 regional indicator symbols, by their names: 213 characters. It is
    applied to the text before folding, one character for one, so the offsets into the
    original text stay right, and only for matching: the text a user sees keeps its
    characters (a flag is two regional indicators, "\U0001f1eb\U0001f1f7" reads "fr").
    """
    found: dict[int, str] = {}
    for code in itertools.chain.from_iterable(_MAY_BE_LATIN):
        name = unicodedata.name(chr(code), "")
        if "LETTER" in name and (match := _ENCLOSED_LETTER_RE.fullmatch(name)):
            found[code] = match.group(1).lower()
    return found


# Regional indicators: two in a row are one flag to a reader (UAX #29 makes them one
# grapheme cluster), "\U0001f1eb\U0001f1f7" is France.
_REGIONAL_RUN_RE = re.compile("[\U0001f1e6-\U0001f1ff]+")


def read_framed_letters(text: str) -> str:
    """``text`` with every letter in a frame replaced by its ASCII letter, one for one.

    Regional indicators are letters only in a run of their own ("\U0001f1eb\U0001f1fa
    \U0001f1e8\U0001f1f0", or spaced out): right after or before a letter or digit they
    are a flag written against a word ("shithead\U0001f1eb\U0001f1f7"), which is no part
    of it, and stay as they are. The result has the length of ``text``, so offsets into
    one are offsets into the other.
    """
    table = enclosed_letters()
    read = text.translate(table)
    if not _REGIONAL_RUN_RE.search(text):
        return read
    chars = list(read)
    for run in _REGIONAL_RUN_RE.finditer(text):
        start, end = run.span()
        glued = (start and text[start - 1].isalnum()) or (end < len(text) and text[end].isalnum())
        if glued:
            chars[start:end] = run.group()
    return "".join(chars)
