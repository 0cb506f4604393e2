"""Letters in frames: circled, squared, negative, parenthesized, and regional indicators.

"\U0001f175\U0001f184\U0001f172\U0001f17a" (negative squared), "\U0001f155" (negative
circled), "\u24a1" (parenthesized: NFKC makes it "(f)") and "\U0001f1eb" (regional
indicator) were not read as letters, so a word spelled in them passed the input check;
and a reply word in circled or squared letters (which NFKC does read) was reported as
masked but shown as it was: the framed letters are symbols to Unicode, and only letters
were masked.
"""

from __future__ import annotations

import unicodedata

import pytest

from tools.guardrails import SafetyFilter
from tools.guardrails.confusables import enclosed_letters, read_framed_letters
from tools.guardrails.filter import _normalise
from tools.guardrails.streaming import StreamMasker

FILTER = SafetyFilter()
ENCLOSED_BLOCKS = (range(0x2460, 0x2500), range(0x1F100, 0x1F200))


def _framed() -> list[tuple[str, str]]:
    """Every framed Latin letter of Unicode, by its name, with its letter."""
    found = []
    for block in ENCLOSED_BLOCKS:
        for code in block:
            name = unicodedata.name(chr(code), "")
            words = name.split()
            if len(words) >= 2 and words[-2] == "LETTER" and len(words[-1]) == 1:
                found.append((chr(code), words[-1].lower()))
    return found


FRAMED = _framed()


def test_every_framed_latin_letter_reads_as_its_letter() -> None:
    # 26 x 8 styles (circled capital and small, parenthesized small and capital, squared,
    # negative circled, negative squared, regional indicators), and 5 single ones.
    assert len(FRAMED) == 213
    wrong = {}
    for char, letter in FRAMED:
        norm, _ = _normalise(f"x {char} x")
        if norm != f"x {letter} x":
            wrong[f"U+{ord(char):04X} {unicodedata.name(char)}"] = norm
    assert not wrong
    assert set(enclosed_letters()) == {ord(char) for char, _ in FRAMED}


def _spell(word: str, first: int) -> str:
    return "".join(chr(first + ord(c) - ord("a")) for c in word)


STYLES = {
    "negative squared": 0x1F170,
    "negative circled": 0x1F150,
    "squared": 0x1F130,
    "circled capital": 0x24B6,
    "circled small": 0x24D0,
    "parenthesized small": 0x249C,
    "parenthesized capital": 0x1F110,
    "regional indicator": 0x1F1E6,
}


@pytest.mark.parametrize("first", STYLES.values(), ids=STYLES.keys())
def test_a_word_in_framed_letters_is_matched(first: int) -> None:
    assert not FILTER.check_input(_spell("fuck", first), "strict").allowed
    assert not FILTER.check_input(f"that was {_spell('shit', first)}!", "strict").allowed
    verdict = FILTER.check_input(f"how to make a {_spell('bomb', first)}", "relaxed")
    assert not verdict.allowed and verdict.rule == "weapons"


@pytest.mark.parametrize("first", STYLES.values(), ids=STYLES.keys())
def test_a_framed_word_is_masked_in_a_reply_and_nothing_else(first: int) -> None:
    word = _spell("fuck", first)
    reply = f"what the {word} \U0001f642\U0001f525 \U0001f1ee\U0001f1f9, ok?"
    masked = FILTER.mask_output(reply, "strict")
    assert masked.masked == (word,)
    assert masked.text == "what the **** \U0001f642\U0001f525 \U0001f1ee\U0001f1f9, ok?"


@pytest.mark.parametrize(
    "text",
    [
        "sh\U0001f178t happens",  # one framed letter among plain ones
        "\U0001f175uck",
        "\u24e2\u24d7\u24d8\u24e3 happens",
        "\U0001f1eb \U0001f1fa \U0001f1e8 \U0001f1f0",  # spaced, as typed in chat
        "\U0001f1eb\u200b\U0001f1fa\u200b\U0001f1e8\u200b\U0001f1f0",  # zero-width spaces
    ],
)
def test_framed_letters_mixed_or_spaced_are_read(text: str) -> None:
    assert not FILTER.check_input(text, "strict").allowed
    assert FILTER.mask_output(text, "strict").text != text


@pytest.mark.parametrize(
    "text",
    [
        "Great trip \U0001f1eb\U0001f1f7 \U0001f1ee\U0001f1f9 \U0001f1fa\U0001f1f8!",
        "Argentina \U0001f1e6\U0001f1f7 vs Sweden \U0001f1f8\U0001f1ea tonight",
        "\u24c2\ufe0f metro, \U0001f17f\ufe0f parking, \U0001f197 \U0001f18e \u00a9 \u00ae",
        "family \U0001f468\u200d\U0001f469\u200d\U0001f467, thumbs \U0001f44d\U0001f3fd \U0001f525",
        "\U0001f170\U0001f171 blood types: \U0001f170 and \U0001f171",
        "(a) first, (b) second, \u249c and \u249d",
    ],
)
def test_ordinary_emoji_and_flags_are_left_as_they_are(text: str) -> None:
    assert FILTER.check_input(text, "strict").allowed
    masked = FILTER.mask_output(text, "strict")
    assert masked.masked == ()
    assert masked.text == text


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("shithead\U0001f1eb\U0001f1f7", "********\U0001f1eb\U0001f1f7"),
        ("\U0001f1fa\U0001f1f8shit", "\U0001f1fa\U0001f1f8****"),
        ("go \U0001f1eb\U0001f1f7 shit", "go \U0001f1eb\U0001f1f7 ****"),
    ],
)
def test_a_flag_against_a_word_is_no_part_of_it(text: str, want: str) -> None:
    assert FILTER.mask_output(text, "strict").text == want


def test_reading_framed_letters_keeps_the_length() -> None:
    text = "\u24a1\U0001f184 \U0001f1e8\U0001f1f0 ok\U0001f1eb\U0001f1f7 \U0001f642"
    read = read_framed_letters(text)
    assert len(read) == len(text)
    assert read == "fu ck ok\U0001f1eb\U0001f1f7 \U0001f642"


@pytest.mark.parametrize(
    "reply",
    [
        "what the \U0001f175\U0001f184\U0001f172\U0001f17a \U0001f642 \U0001f1ee\U0001f1f9, ok?",
        "\u24a2\u24a3\u24a4\u24a5 and \u24e2\u24d7\u24d8\u24e3 and sh\U0001f178t",
        "shithead\U0001f1eb\U0001f1f7 then \U0001f1eb \U0001f1fa \U0001f1e8 \U0001f1f0 then "
        "\U0001f1eb\U0001f1fa\U0001f1e8\U0001f1f0 and \U0001f1fa\U0001f1f8shit",
        "Great trip \U0001f1eb\U0001f1f7\U0001f1ee\U0001f1f9 \U0001f197 \U0001f17f\ufe0f",
    ],
)
def test_a_streamed_reply_is_masked_as_the_stored_one(reply: str) -> None:
    for level in ("strict", "moderate"):
        want = FILTER.mask_output(reply, level).text
        masker = StreamMasker(FILTER, level)
        shown = "".join(masker.feed(char) for char in reply) + masker.finish()
        assert shown == want, level
