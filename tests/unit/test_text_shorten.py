"""Unit tests for tools.text.shorten: text is cut between grapheme clusters, never inside one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tools.text import GRAPHEME, shorten

# Each value is one character as a reader sees it, and several code points.
CLUSTERS = {
    "flag": "🇫🇷",
    "skin tone": "👍🏽",
    "ZWJ family": "👨\u200d👩\u200d👧\u200d👦",
    "ZWJ with skin tones": "🧑🏻\u200d🤝\u200d🧑🏿",
    "keycap": "1\ufe0f\u20e3",
    "emoji presentation": "\u2764\ufe0f",
    "subdivision flag": "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "combining accent": "e\u0301",
    "two combining marks": "a\u0323\u0302",
    "Hangul jamo": "\u1100\u1161\u11a8",
    "Devanagari conjunct": "क्षि",
    "Devanagari vowel sign": "नी",
    "CR LF": "\r\n",
}


def test_each_sample_is_one_cluster_of_several_code_points() -> None:
    for name, cluster in CLUSTERS.items():
        assert len(cluster) > 1, name
        assert GRAPHEME.findall(cluster) == [cluster], name


def _texts() -> list[tuple[str, str]]:
    texts = []
    for name, cluster in CLUSTERS.items():
        texts.append((name, cluster * 6))
        texts.append((f"{name} after text", "ab " + cluster * 3 + " x" + cluster))
    texts.append(("mixed", "".join(CLUSTERS.values())))
    texts.append(("flags in a row", "🇫🇷🇩🇪🇯🇵🇺🇸"))  # pairs must not re-pair after a cut
    return texts


TEXTS = _texts()


@pytest.mark.parametrize("clusters", [False, True], ids=["code points", "clusters"])
@pytest.mark.parametrize("mark", ["…", "...", ""])
@pytest.mark.parametrize("text", [t for _, t in TEXTS], ids=[n for n, _ in TEXTS])
def test_every_cut_keeps_whole_clusters_from_the_start(
    text: str, mark: str, clusters: bool
) -> None:
    whole = GRAPHEME.findall(text)
    size = len(whole) if clusters else len(text)
    for limit in range(max(1, len(mark)), size + 3):
        short = shorten(text, limit, mark, clusters=clusters)
        if limit >= size:
            assert short == text
            continue
        assert short.endswith(mark)
        kept = short[: len(short) - len(mark)]
        kept_clusters = GRAPHEME.findall(kept)
        # A prefix of the text made of whole clusters of it: none cut, none changed.
        assert kept_clusters == whole[: len(kept_clusters)]
        assert "".join(kept_clusters) == kept
        used = len(kept_clusters) + len(mark) if clusters else len(short)
        assert used <= limit
        # The longest such prefix: the next cluster would not have fitted.
        following = whole[len(kept_clusters)]
        assert used + (1 if clusters else len(following)) > limit


@pytest.mark.parametrize(
    ("text", "limit", "mark", "expected"),
    [
        ("abcdef", 4, "…", "abc…"),  # as text[: limit - 1] + "…" for plain text
        ("abcdef", 6, "…", "abcdef"),
        ("abcdef", 5, "...", "ab..."),
        ("ab🇫🇷cd", 4, "…", "ab…"),  # the flag is two code points: it does not fit
        ("ab🇫🇷cd", 5, "…", "ab🇫🇷…"),
        ("cafe\u0301 au lait", 5, "…", "caf…"),  # never "cafe" without its accent
        ("👨\u200d👩\u200d👧\u200d👦!", 7, "…", "…"),  # not even the first one fits
        ("한국어 텍스트", 3, "…", "한국…"),
    ],
)
def test_shorten_by_code_points(text: str, limit: int, mark: str, expected: str) -> None:
    assert shorten(text, limit, mark) == expected


def test_shorten_by_clusters_counts_what_a_reader_sees() -> None:
    family = CLUSTERS["ZWJ family"]
    assert shorten(family * 3, 3, clusters=True) == family * 3
    assert shorten(family * 4, 3, clusters=True) == family * 2 + "…"
    assert shorten("e\u0301" * 5, 3, "..", clusters=True) == "e\u0301.."


@pytest.mark.parametrize(("limit", "mark"), [(0, "…"), (-1, "…"), (2, "..."), (0, "")])
def test_a_limit_without_room_for_the_mark_is_a_clear_error(limit: int, mark: str) -> None:
    with pytest.raises(ValueError, match="at least"):
        shorten("some text", limit, mark)


def _call_sites() -> dict[str, tuple[Callable[[str], str], int]]:
    from evals.corpus import shorten as corpus_shorten
    from tools.documents.retrieval import _clip
    from tools.guardrails.injection import PassageCheck
    from tools.memory.long_term import _one_line
    from tools.models.remote import _said

    return {
        "injection excerpt": (lambda t: PassageCheck(flagged=False).excerpt(t, 20), 20),
        "retrieval clip": (lambda t: _clip(t, 20), 20),
        "memory line": (lambda t: _one_line(t, 20), 20),
        "eval corpus": (lambda t: corpus_shorten(t, 20), 20),
        "remote error": (lambda t: _said(Exception(t)), 203),
    }


@pytest.mark.parametrize(
    "site", ["injection excerpt", "retrieval clip", "memory line", "eval corpus", "remote error"]
)
@pytest.mark.parametrize("cluster", CLUSTERS.values(), ids=CLUSTERS.keys())
def test_every_call_site_cuts_between_clusters(site: str, cluster: str) -> None:
    cut, limit = _call_sites()[site]
    if cluster == "\r\n":
        cluster = "o\u0300"  # the call sites flatten whitespace
    for lead in range(4):
        text = "a" * lead + cluster * (limit + 5)
        short = cut(text)
        assert len(short) <= limit
        body = short.rstrip(".…")
        assert body == "a" * lead + cluster * ((len(body) - lead) // len(cluster))
