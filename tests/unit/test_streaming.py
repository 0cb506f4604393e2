"""Streaming without leaks: what reaches the screen is masked exactly as the stored reply."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from tests.conftest import thread
from tests.support.streaming import PieceModel, pieces_of, screen_of_turn
from tools.guardrails import SafetyFilter
from tools.guardrails.filter import MAX_WORD
from tools.guardrails.streaming import StreamMasker
from tools.models import FakeChatModel

# Replies that broke the old word-by-word masking, and their neighbours.
REPLIES = [
    "what the f u c k, a blow job, bull shit",
    "What a s h i t show",
    "the f-u-c-k word, f.u.c.k and F U C K",
    "blow job and blow-job and blow\njob",
    "bull shit, bull-shit, bullshit",
    "这是shit吗？你好世界，今天天气很好。他说fuck然后走了。",
    "Mixed: bull-shit, 好 and s h 1 t! Then a f u c k i n g mess.",
    "i s h i t you not",
    "c l a s s i c is spelled out, and so is a s s e s s",
    "Maine coon cats and Dick Van Dyke are fine; so is Scunthorpe.",
    "fuuuuck this shiiit, f*ck and a**hole",
    "sh\u0131t, \u0455h\u0456t and \u13aass",
    "https://example.com/" + "a" * 80 + "/fuck?q=shit then shit",
    "x" * (MAX_WORD + 5) + "shit and shit",
    "\ufb01ne \ufb01sh, caf\u00e9 fu\u200bck",
    "what a fu\u2062cking mess, sh\x07it and bull\u3164shit\ufe0f \U000e0041ok\u2800",
    "Ends with a spelled-out word: s h i t",
    "shit",
    "",
    "No profanity at all, just a normal answer about Python processes.",
    "Ask Dick Smith, or Philip Dick, not a dick. Hey Dick.",  # names hang on the next word
    "Parts A55-B00B5-7 and 5H1T-22 are codes; 5H1T alone is not, nor sh1t-22x.",
    "We drove through Shitterton, a shithole? No: Shitterton is lovely.",
    # Read after a point no reading crosses, with the word before it as the only context.
    "hello\U0001f600K. Dick is here, \u4f60\u597dK. Dick, ok, K. Dick",
    "Sheila\U0001f600Dikshit and \u4f60\u597dbull shit\u4f60\u597d, bull\u4f60shit",
    "f u c k\u4f60\u597ds h i t, A55-\u4f60B00B5 and fuck, A55-B00B5-7 ok",
    "Wow!!! \U0001f600 ape$hit, " + "\u4f60\u597d" * 50 + "Dick Smith",
    # Spaced-out sentences: a wider gap parts words, one- and two-letter words too.
    "w h a t  t h e  f u c k  i s  t h i s ,  i t  i s  s h i t",
    "g o  i t  I  t o  I  s a y  s h i t",
    "h.o.w d.o I s.a.y f.u.c.k n.i.c.e.l.y",
]
LEVELS = ("strict", "moderate", "relaxed")


def stream(guard: SafetyFilter, level: str, pieces: list[str]) -> list[str]:
    masker = StreamMasker(guard, level)  # type: ignore[arg-type]
    return [masker.feed(piece) for piece in pieces] + [masker.finish()]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("reply", REPLIES)
def test_joined_stream_equals_the_masked_reply(guard: SafetyFilter, level: str, reply: str) -> None:
    want = guard.mask_output(reply, level).text
    words = re.findall(r"\S+\s*|\s+", reply)
    assert "".join(stream(guard, level, words)) == want
    assert "".join(stream(guard, level, list(reply))) == want
    for seed in range(25):  # token-by-token: pieces of 1-3 characters
        assert "".join(stream(guard, level, pieces_of(reply, random.Random(seed), 1, 3))) == want
    for seed in range(10):
        assert "".join(stream(guard, level, pieces_of(reply, random.Random(seed), 1, 12))) == want


@pytest.mark.parametrize(
    ("reply", "masked"),
    [
        ("What a s h i t show", "What a * * * * show"),
        ("i s h i t you not", "i * * * * you not"),
        ("a f u c k i n g mess", "a * * * * * * * mess"),
        ("what the f u c k", "what the * * * *"),
        ("c l a s s i c", "c l a s s i c"),
        ("a s s e s s", "a s s e s s"),
        ("the f-u-c-k word", "the *-*-*-* word"),
        ("a blow job", "a **** ***"),
    ],
)
def test_masking_never_swallows_neighbouring_words(
    guard: SafetyFilter, reply: str, masked: str
) -> None:
    assert guard.mask_output(reply, "moderate").text == masked


@pytest.mark.parametrize(
    ("reply", "masked"),
    [
        ("sh\u0131t", "****"),  # dotless i
        ("\u0455h\u0456t", "****"),  # Cyrillic
        ("\u0455h\u03b9t", "****"),  # Cyrillic s, Greek iota
        ("\u13daHIT", "****"),  # Cherokee S
        ("f\u057d\u0441k", "****"),  # Armenian and Cyrillic
    ],
)
def test_look_alike_letters_of_any_script_are_masked(
    guard: SafetyFilter, reply: str, masked: str
) -> None:
    assert guard.mask_output(reply, "moderate").text == masked


def test_text_without_spaces_streams(guard: SafetyFilter) -> None:
    reply = "你好世界，今天天气很好。我们去公园散步吧，然后回家吃饭。"
    released = stream(guard, "moderate", list(reply))
    # Held back: the last few characters only (as many as the longest listed phrase has
    # words), never the whole reply.
    first = next(i for i, piece in enumerate(released) if piece)
    assert first <= 5
    assert len(released[-1]) <= 5
    assert "".join(released) == reply


def test_a_long_word_is_not_held_back_to_its_end(guard: SafetyFilter) -> None:
    reply = "see https://example.com/" + "b" * 200 + " ok"
    released = stream(guard, "moderate", list(reply))
    # Everything past the first MAX_WORD + 30 characters came out as it arrived.
    assert all(released[i] for i in range(MAX_WORD + 30, len(reply) - 3))
    assert "".join(released) == reply


def test_a_spelled_out_word_is_held_until_it_ends(guard: SafetyFilter) -> None:
    masker = StreamMasker(guard, "moderate")
    shown = "".join(masker.feed(piece) for piece in ["ok so f", " u", " c"])
    assert "f" not in shown.replace("of", "")
    shown += masker.feed(" k ") + masker.feed("off now ") + masker.finish()
    assert shown == "ok so * * * * off now "
    assert masker.masked == ["f u c k"]


def test_relaxed_passes_every_piece_at_once(guard: SafetyFilter) -> None:
    masker = StreamMasker(guard, "relaxed")
    assert [masker.feed(p) for p in ["f u", " c k"]] == ["f u", " c k"]
    assert masker.finish() == ""


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("reply", REPLIES[:8])
@pytest.mark.parametrize("model_class", [FakeChatModel, PieceModel])
def test_screen_equals_stored_reply_through_the_graph(
    make_settings: Any, level: str, reply: str, model_class: type[FakeChatModel]
) -> None:
    model = model_class(reply=reply)
    graph = build_graph(make_settings(), checkpointer=InMemorySaver(), model=model)
    screen = screen_of_turn(graph, "hi", level)
    stored = graph.get_state(thread()).values["messages"][-1].text
    assert screen == stored
    assert stored == SafetyFilter().mask_output(reply, level).text


@pytest.mark.parametrize(
    "words",
    [
        ["Sure", ",", " here", " is", " a", " short", " answer", " about", " DNS", "."],
        ["The", " capital", " of", " France", " is", " Paris", " and", " so", " on"],
        ["Use", " kill", " -9", " on", " the", " stuck", " process", " then", " retry"],
    ],
)
def test_words_that_start_no_listed_phrase_are_shown_one_word_behind(
    guard: SafetyFilter, words: list[str]
) -> None:
    # Only a word that may start a listed phrase ("bull", "blow") waits for the words
    # after it; others are shown as soon as the next word is complete.
    masker = StreamMasker(guard, "moderate")
    shown = ""
    for k, piece in enumerate(words):
        shown += masker.feed(piece)
        if k >= 2:
            assert "".join(words[: k - 1]).strip() in shown, (k, shown)
    assert shown + masker.finish() == "".join(words)


def test_a_word_that_may_start_a_phrase_waits_for_the_phrase(guard: SafetyFilter) -> None:
    masker = StreamMasker(guard, "moderate")
    shown = "".join(masker.feed(piece) for piece in ["it", " is", " bull", " and", " more"])
    assert "bull" not in shown  # "bull shit" stays possible until enough words follow
    shown += masker.feed(" words") + masker.feed(" here") + masker.finish()
    assert shown == "it is bull and more words here"


FILLER = "the cat sat on the mat and " * 5  # longer than the context a stream keeps


@pytest.mark.parametrize(
    "word",
    [
        "ape$hit",  # a compound root behind leetspeak
        "ape5hit",
        "bull$hit",
        "a$5shole",  # a run of three only once the leetspeak is read ("asss")
    ],
)
@pytest.mark.parametrize(
    "before", ["", "Wow!!! ", "Wow!!! " + FILLER, "Hmmm. " + FILLER, "clusterfuck. " + FILLER]
)
def test_a_word_reads_the_same_whatever_text_is_before_it(
    guard: SafetyFilter, word: str, before: str
) -> None:
    # Whether the slow readings ran depended on the whole text ("!!!" anywhere made
    # "ape$hit" a match): a stream, which reads its words in a shorter text, showed
    # what the stored reply masked.
    alone = guard.mask_output(word, "moderate").text
    assert alone != word
    reply = f"{before}it was {word}."
    want = guard.mask_output(before, "moderate").text + f"it was {alone}."
    assert guard.mask_output(reply, "moderate").text == want
    assert "".join(stream(guard, "moderate", list(reply))) == want


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("\u4f60\u597d\u4e16\u754c", 2),  # between two Chinese characters
        ("x \u4f60\u597d y", 2),
        ("bull\u4f60shit", 4),
        ("a b, c d", 2),  # after ", ": the word before it
        ("hello \U0001f600 there", 0),
        ("one... two three", 0),
        # Gaps a phrase, a spelled-out word, a code or a name spans; a script break.
        ("bull shit and more", 0),
        ("bull-shit or bull\nshit", 0),
        ("Philip K. Dick", 0),
        ("A55-B00B5-7", 0),
        ("f.u.c.k s h i t", 0),
        ("\u0645\u0631\u062d\u0628\u0627shit", 0),
        ("", 0),
    ],
)
def test_restart_is_the_word_before_the_last_point_no_reading_crosses(
    guard: SafetyFilter, text: str, start: int
) -> None:
    assert guard.restart(text) == start


class ReadCounter(SafetyFilter):
    """A filter that remembers how long each text it was asked to settle was."""

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def settled(self, text: str, level: str) -> int:
        self.lengths.append(len(text))
        return super().settled(text, level)


@pytest.mark.parametrize(
    "reply",
    [
        "\u4f60\u597d\u4e16\u754c\u4eca\u5929\u5929\u6c14\u5f88\u597d" * 40,
        "\u3053\u3093\u306b\u3061\u306f\u30ab\u30bf\u30ab\u30ca" * 40,
        "ok\U0001f600 " * 100,
        "yes, no, maybe, " * 40,
    ],
)
def test_each_piece_of_text_without_spaces_reads_a_short_text(reply: str) -> None:
    # Each piece was settled in a text of the whole context (80+ characters) again, so
    # 1,200 Chinese characters one at a time took 1.6 s in the masker instead of 0.3 s.
    counter = ReadCounter()
    masker = StreamMasker(counter, "moderate")
    shown = "".join(masker.feed(char) for char in reply) + masker.finish()
    assert shown == reply
    assert max(counter.lengths) <= 20, max(counter.lengths)


@pytest.mark.parametrize(
    "reply",
    [
        "The cafe was very pleasant and the creme brulee was delicious today. " * 4,
        "Ask Dick Smith, or Philip Dick, not a dick. Hey Dick, bull shit and blow job.",
        "see https://example.com/" + "b" * 120 + " and " + "c" * 39 + "d shit",
        "f" + "uck, sh\x07it, ab_cd, ab$cd, \u0645\u0631\u062d\u0628\u0627ab fuck",
    ],
)
def test_letters_that_lengthen_a_word_are_not_settled_again(reply: str) -> None:
    # A letter added to a word of two ASCII letters or more changes nothing settled says;
    # the pieces are those of a masker that asks every time.
    counter, every = ReadCounter(), ReadCounter()
    fast = StreamMasker(counter, "moderate")
    slow = StreamMasker(every, "moderate")
    slow._lengthens_word = lambda piece: False  # type: ignore[method-assign]
    pieces = [fast.feed(char) for char in reply] + [fast.finish()]
    assert pieces == [slow.feed(char) for char in reply] + [slow.finish()]
    assert "".join(pieces) == every.mask_output(reply, "moderate").text
    assert len(counter.lengths) < len(every.lengths)
