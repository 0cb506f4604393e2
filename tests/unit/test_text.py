"""Unit tests for tools.text: the folding shared by routing and the safety filter, YAML."""

from __future__ import annotations

import unicodedata
from typing import Annotated

import pytest
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from tools.text import (
    APOSTROPHE_LOOKALIKES,
    QUOTES,
    Location,
    describe_validation_error,
    fold,
    fold_char,
    fold_with_offsets,
    is_blank,
    is_invisible,
    limit_marks,
    parse_yaml,
    straighten_quotes,
    strip_accents,
)

# --- tables ---------------------------------------------------------------------------


def test_quote_tables_map_to_ascii_quotes_only() -> None:
    for table in (QUOTES, APOSTROPHE_LOOKALIKES):
        assert table, "empty table"
        for char, ascii_quote in table.items():
            assert len(char) == 1
            assert char == "`" or not char.isascii()
            assert ascii_quote in ("'", '"'), unicodedata.name(char)
    assert not set(QUOTES) & set(APOSTROPHE_LOOKALIKES)


# Characters that draw nothing, beyond the zero-width space: format characters (invisible
# operators, tags, bidi marks, interlinear annotation), controls, variation selectors and
# the blank letters (Hangul fillers, the blank Braille pattern).
INVISIBLE_SAMPLES = [
    "\u200b", "\u00ad", "\ufeff", "\u2062", "\u2064", "\ufe0f", "\U000e0041", "\U000e0100",
    "\u034f", "\u180e", "\ufff9", "\u202e", "\u3164", "\u2800", "\x00", "\x07", "\x1b",
    "\x7f", "\x9b",
]  # fmt: skip
# Whitespace and what shows: never dropped (a combining accent goes, but as an accent).
VISIBLE_SAMPLES = [
    " ", "\t", "\n", "\r", "\v", "\f", "\u00a0", "\u3000", "a", ".", "\u2764",
    "\U0001f600", "\u0661", "\u1100",
]  # fmt: skip


@pytest.mark.parametrize("char", INVISIBLE_SAMPLES)
def test_invisible_characters_vanish_from_the_fold_and_count_as_blank(char: str) -> None:
    assert is_invisible(char)
    assert fold_char(char) == ""
    assert is_blank(char * 3)
    # The same class for both: a word split by it is the word, a message of it is empty.
    norm, index = fold_with_offsets(f"Bo{char}mb")
    assert norm == "bomb" and index == [0, 1, 3, 4]


@pytest.mark.parametrize("char", VISIBLE_SAMPLES)
def test_whitespace_and_visible_characters_are_not_invisible(char: str) -> None:
    assert not is_invisible(char)
    assert fold_char(char) != ""
    assert fold_with_offsets(f"bo{char}mb")[0] != "bomb"


def test_ascii_text_with_a_control_character_maps_back_to_the_original() -> None:
    assert fold_with_offsets("Pipe bo\x07mb\x1b!") == (
        "pipe bomb!",
        [0, 1, 2, 3, 4, 5, 6, 8, 9, 11],
    )


# --- straighten_quotes, strip_accents --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "plain", "with_lookalikes"),
    [
        ("I\u2019m", "I'm", "I'm"),
        ("\u201cquoted\u201d", '"quoted"', '"quoted"'),
        ("\u201elow\u201f and 5\u2032 6\u2033", '"low" and 5\' 6"', '"low" and 5\' 6"'),
        ("I`m", "I`m", "I'm"),
        ("I\u00b4m", "I\u00b4m", "I'm"),
        ("plain 'ascii' \"text\"", "plain 'ascii' \"text\"", "plain 'ascii' \"text\""),
        ("", "", ""),
    ],
)
def test_straighten_quotes(text: str, plain: str, with_lookalikes: str) -> None:
    assert straighten_quotes(text) == plain
    assert straighten_quotes(text, lookalikes=True) == with_lookalikes
    assert len(straighten_quotes(text, lookalikes=True)) == len(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f\u00fcck", "fuck"),
        ("fu\u0308ck", "fuck"),  # a combining diaeresis typed separately
        ("caf\u00e9 na\u00efve", "cafe naive"),
        ("\u0416\u0438\u0432\u043e", "\u0416\u0438\u0432\u043e"),  # Cyrillic letters stay
        ("\u00c5ngstr\u00f6m", "Angstrom"),  # case is not touched
    ],
)
def test_strip_accents(text: str, expected: str) -> None:
    assert strip_accents(text) == expected


# --- fold (routing) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Explain Like I\u2019m Five", "explain like i'm five"),
        ("I`m and I\u00b4m", "i'm and i'm"),
        ("\uff25\uff2c\uff29\uff15", "eli5"),  # full-width: NFKC
        ("Stra\u00dfe", "strasse"),  # casefold, not lower
        ("\ufb01ne", "fine"),  # ligature: NFKC
        ("caf\u00e9", "caf\u00e9"),  # accents stay for routing
        ("a\u200bb", "a\u200bb"),  # and so do invisible characters
    ],
)
def test_fold(text: str, expected: str) -> None:
    assert fold(text) == expected


# --- fold_char, fold_with_offsets (safety filter) ---------------------------------------


@pytest.mark.parametrize(
    ("char", "expected"),
    [
        ("\u200b", ""),
        ("\u00ad", ""),
        ("\u2019", "'"),
        ("\uff07", "'"),
        ("\u00c9", "e"),
        ("\u00fc", "u"),
        ("\ufb01", "fi"),
        ("\uff26", "f"),
        ("\u00df", "\u00df"),  # lower, not casefold
        ("\u00b4", " "),  # an acute accent alone: NFKC gives space + accent, the accent goes
        ("\u0430", "\u0430"),  # homoglyphs are the filter's business, not folding's
    ],
)
def test_fold_char(char: str, expected: str) -> None:
    assert fold_char(char) == expected


@pytest.mark.parametrize("text", ["Hello World", "sh!t and a$$", "`code` 'quoted'", ""])
def test_ascii_text_is_only_lower_cased(text: str) -> None:
    assert fold_with_offsets(text) == (text.lower(), None)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("F\u00fcck", "fuck"),
        ("sh\u200bit", "shit"),
        ("\ufb01ne \u2019n\u2019 dandy", "fine 'n' dandy"),
        ("\uff26\uff35\uff23\uff2b!", "fuck!"),
        ("Hell\u2019s Kitchen", "hell's kitchen"),
        ("\u00c5 `b`", "a `b`"),
    ],
)
def test_fold_with_offsets_maps_back_to_the_original(text: str, folded: str) -> None:
    norm, index = fold_with_offsets(text)
    assert norm == folded
    assert index is not None and len(index) == len(norm)
    assert index == sorted(index)
    for position, source in enumerate(index):
        assert norm[position] in fold_char(text[source]) or norm[position] == text[source].lower()


# --- YAML --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \t\n",
        "\u200b\u200b",
        "\ufeff",
        "\u00a0\u3000",
        "\u200d\ufe0f",
        "\u2060\u00ad",
        "\u202e\u200e",
        "\U000e0041\U000e0100",
        "\u3164",
        "\u2800",
        "\x07\x08",
        "\x00",
        "\x7f",
        "\x07\x1b \n",
    ],
)
def test_is_blank_for_whitespace_and_invisible_characters(text: str) -> None:
    assert is_blank(text)


@pytest.mark.parametrize(
    "text",
    [
        "a",
        "\u200bhi\u200b",
        ".",
        "\U0001f600",
        "\u2764\ufe0f",
        "\u0661",
        "\ud800",
        "\u0301",
        "\x07a\x1b",
    ],
)
def test_is_blank_not_for_anything_visible(text: str) -> None:
    assert not is_blank(text)


def test_parse_yaml_reads_plain_data() -> None:
    assert parse_yaml("a: [1, two]\nb: {c: null}\n") == {"a": [1, "two"], "b": {"c": None}}
    assert parse_yaml("") is None


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",
        "outer:\n  x: 1\n  x: 2\n",
        "list:\n  - {k: 1, k: 2}\n",
        "1: a\n1: b\n",
    ],
)
def test_parse_yaml_rejects_duplicate_keys(text: str) -> None:
    with pytest.raises(yaml.YAMLError, match="duplicate key"):
        parse_yaml(text)


def test_parse_yaml_refuses_python_objects() -> None:
    with pytest.raises(yaml.YAMLError):
        parse_yaml("!!python/object/apply:os.system ['true']\n")


# --- describe_validation_error ------------------------------------------------------------


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be positive")
    return value


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    size: Annotated[int, AfterValidator(_positive)] = 1


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    items: Annotated[dict[str, _Item], Field(min_length=1)]


def _where(location: Location) -> tuple[str, str]:
    match location:
        case ("items",):
            return "'items'", "a non-empty mapping"
        case ("items", key):
            return f"item {key!r}", "a mapping with 'name'"
        case ("items", key, field):
            return f"item {key!r}: {field!r}", f"a valid {field}"
    return "the document", "a mapping with 'items'"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "the document must be a mapping with 'items', not None"),
        ({}, "the document is missing 'items' (a non-empty mapping)"),
        ({"items": {}}, "'items' must be a non-empty mapping, not {}"),
        ({"items": {"a": {}}}, "item 'a' is missing 'name' (a valid name)"),
        ({"items": {"a": "x"}}, "item 'a' must be a mapping with 'name', not 'x'"),
        ({"items": {"a": {"name": 3}}}, "item 'a': 'name' must be a valid name, not 3"),
        ({"items": {"a": {"name": "n", "size": -1}}}, "item 'a': 'size' must be positive"),
        (
            {"items": {"a": {"name": "n", "colour": 1}}, "extra": 2},
            "item 'a' has unknown key 'colour'; expected a mapping with 'name'; "
            "the document has unknown key 'extra'; expected a mapping with 'items'",
        ),
    ],
)
def test_describe_validation_error(data: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _Doc.model_validate(data)
    assert describe_validation_error(info.value, _where) == message


# Real text with stacked marks, each cluster within MARKS_PER_CLUSTER: kept as it is.
STACKED = [
    "Tiếng Việt",  # composed
    unicodedata.normalize("NFD", "Tiếng Việt, người"),  # two marks on one letter
    "בְּרֵאשִׁ֖ית",  # pointed Hebrew with a cantillation mark
    "स्त्री क्षत्रिय",  # Devanagari conjuncts (two viramas in one cluster)
    "བསྒྲུབས",  # Tibetan stack
    "1️⃣ 👍🏽 👨‍👩‍👧 🏴󠁧󠁢󠁥󠁮󠁧󠁿",  # keycap, skin tone, family, England's flag
    "plain ascii",
]


@pytest.mark.parametrize("text", STACKED)
def test_limit_marks_keeps_the_marks_of_real_writing(text: str) -> None:
    assert limit_marks(text) == text


@pytest.mark.parametrize("marks", [5, 12, 60])
def test_limit_marks_trims_zalgo_stacks_to_their_first_marks(marks: int) -> None:
    above = "".join(chr(0x0300 + i % 0x30) for i in range(marks))
    zalgo = "".join(letter + above for letter in "Hello")
    trimmed = limit_marks(zalgo)
    assert trimmed == "".join(letter + above[:4] for letter in "Hello")
    assert limit_marks(zalgo, keep=0) == "Hello"
    assert limit_marks(zalgo, keep=marks) == zalgo
