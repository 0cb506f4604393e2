"""Look-alike letters from any script, read as the Latin letter they imitate.

The table comes from Unicode's confusables data (UTS #39, ``confusables.txt``) as the
``confusable-homoglyphs`` package ships it (MIT), not from a hand-picked list: "sh\u0131t"
(dotless i), "\u0455h\u0456t" (Cyrillic), "\u13aa" (Cherokee) and letters of two dozen
other scripts all fold. Only letters are folded (a symbol such as "\u2223" is no letter
inside a word), and only to one ASCII letter, so the folded text keeps its length and
the filter's offsets into the original text stay right.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from tools.text import fold_char

__all__ = ["latin_lookalikes"]


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
            letters = [
                g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()
            ]
            if not letters:
                continue
            lower = [letter for letter in letters if letter.islower()]
            table.setdefault(ord(folded), (lower or letters)[0].lower())
    return table
