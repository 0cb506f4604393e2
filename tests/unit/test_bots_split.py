"""Long replies cut at a platform's limit (apps/bots/split.py)."""

from __future__ import annotations

import pytest
import regex

from apps.bots.split import split_text, utf16_units

GRAPHEME = regex.compile(r"\X", regex.DOTALL)


def graphemes(text: str) -> list[str]:
    return GRAPHEME.findall(text)


def words(text: str) -> list[str]:
    return text.split()


LOREM = (
    "The assistant answers on a CPU. It keeps each chat as a thread! Does it split well? "
    "Sentences end here; others go on and on without a stop until the line ends\n"
)


@pytest.mark.parametrize("limit", [20, 57, 100, 4096])
def test_pieces_fit_and_keep_every_word_in_order(limit: int) -> None:
    text = (LOREM * 40 + "\n\n") * 3
    pieces = split_text(text, limit)
    assert all(len(piece) <= limit for piece in pieces)
    assert words(" ".join(pieces)) == words(text)
    assert all(piece == piece.strip() and piece for piece in pieces)


def test_a_short_reply_is_one_piece_and_blank_is_none() -> None:
    assert split_text("  Just this.  ", 4096) == ["Just this."]
    assert split_text(" \n\n ", 10) == []
    assert split_text("", 10) == []


def test_paragraphs_win_over_sentences_and_sentences_over_spaces() -> None:
    first = "First paragraph, one sentence. Another sentence here."
    text = first + "\n\nSecond paragraph that is long enough to need its own piece."
    assert split_text(text, 80)[0] == first
    sentences = "One sentence is here. Two sentences are here. Three follow after"
    assert split_text(sentences, 50) == [
        "One sentence is here. Two sentences are here.",
        "Three follow after",
    ]


def test_text_without_spaces_is_cut_between_characters() -> None:
    text = "x" * 25 + "y" * 10
    pieces = split_text(text, 10)
    assert "".join(pieces) == text
    assert [len(p) for p in pieces] == [10, 10, 10, 5]


def test_cjk_splits_after_full_stops() -> None:
    sentence = "日本語の文章です。"
    pieces = split_text(sentence * 20, 30)
    assert "".join(pieces) == sentence * 20
    assert all(piece.endswith("。") for piece in pieces)
    assert all(len(piece) <= 30 for piece in pieces)


@pytest.mark.parametrize(
    "cluster",
    [
        "👨\u200d👩\u200d👧",  # a family: three emoji joined by zero-width joiners
        "🇯🇵",  # a flag: two regional indicators
        "👍🏽",  # an emoji with a skin tone
        "e\u0301",  # e with a combining acute accent
        "😀",  # one emoji outside the BMP: 2 UTF-16 units
    ],
)
def test_no_cut_inside_a_character_counting_utf16_units(cluster: str) -> None:
    text = cluster * 37
    limit = 3 * utf16_units(cluster) + 1
    pieces = split_text(text, limit, utf16_units)
    assert "".join(pieces) == text
    for piece in pieces:
        assert utf16_units(piece) <= limit
        assert set(graphemes(piece)) == {cluster}


def test_telegram_limit_counts_utf16_not_code_points() -> None:
    text = "😀" * 3000  # 3000 code points, 6000 UTF-16 units
    pieces = split_text(text, 4096, utf16_units)
    assert len(pieces) == 2
    assert all(utf16_units(piece) <= 4096 for piece in pieces)


def test_a_cut_code_block_is_closed_and_reopened_with_its_language() -> None:
    lines = "\n".join(f"    total += values[{i}]  # step {i}" for i in range(120))
    text = f"Here is the code:\n\n```python\n{lines}\n```\n\nThat is all."
    pieces = split_text(text, 500)
    assert len(pieces) > 3
    for piece in pieces:
        assert len(piece) <= 500
        assert piece.count("```") % 2 == 0, piece  # every piece opens what it closes
    for piece in pieces[1:-1]:
        assert piece.startswith("```python\n")
        assert piece.endswith("\n```")
    body = [line for piece in pieces for line in piece.split("\n") if "total +=" in line]
    assert body == lines.split("\n")  # indentation kept, nothing lost or repeated


def test_a_code_block_without_newlines_still_fits() -> None:
    text = "```\n" + "a" * 300 + "\n```"
    pieces = split_text(text, 64)
    assert all(len(piece) <= 64 for piece in pieces)
    assert "".join(p.replace("```", "").replace("\n", "") for p in pieces) == "a" * 300


def test_measure_after_escaping_keeps_escaped_pieces_under_the_limit() -> None:
    def escaped(text: str) -> int:
        return len(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))

    text = "a < b && c > d " * 100
    pieces = split_text(text, 100, escaped)
    assert all(escaped(piece) <= 100 for piece in pieces)
    assert words(" ".join(pieces)) == words(text)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split_text("abc", 0)
    with pytest.raises(ValueError, match="longer than the limit"):
        split_text("😀😀", 1, utf16_units)
