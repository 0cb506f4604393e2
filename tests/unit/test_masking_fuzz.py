"""Masking and streaming invariants, on replies built at random from listed words in disguise.

Each reply is a random mix of innocent words (English, Chinese, Japanese, Thai, Arabic,
Hebrew, emoji) and listed words in every disguise the filter claims to read: spaced-out,
dotted, hyphenated and underscored letters, leetspeak, repeated letters, a star for a
letter, look-alike letters of other scripts (Cyrillic, Greek, Armenian, Cherokee, Latin
extended, fullwidth, mathematical alphanumerics), invisible characters and combining marks
inside the word, and two-word phrases. The reply is built with what its masked form must
be, and then:

* the stored copy is exactly that: every listed word masked, no innocent word touched;
* masking the masked copy changes nothing (the output node masks the streamed reply
  again);
* the joined stream equals the stored copy, whatever the pieces: the whole reply, one
  character at a time (so pieces end between a letter and its combining mark, inside an
  emoji sequence, between a letter and a zero-width joiner), or pieces of random sizes;
* text without whitespace streams: fed one character at a time, never more than
  :data:`LAG_BOUND` characters are held back.

Seeded generators (hypothesis is not a dependency): a failure names its seed, and the
failing seeds of the past are kept as explicit cases below, one per class of bug.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from tests.conftest import thread
from tests.support.streaming import PieceModel, pieces_of, screen_of_turn
from tools.guardrails import SafetyFilter
from tools.guardrails.filter import MAX_WORD
from tools.guardrails.streaming import StreamMasker
from tools.text import is_invisible

MASK = "*"
LEVEL = "moderate"

# Listed at moderate (checked by test_the_listed_words_are_listed).
LISTED_WORDS = ("fuck", "shit", "bitch", "asshole", "cunt", "fucking", "bullshit", "shithead")
LISTED_PHRASES = (("blow", "job"), ("bull", "shit"))
# Listed at strict only.
MILD_WORDS = ("damn", "crap", "bloody", "piss", "hell")

# Innocent words, some of them with a listed word inside ("Scunthorpe", "assess"); the
# one-letter ones are the words a spelled-out word may stand next to.
ENGLISH = (
    "the", "cat", "sat", "on", "mat", "hello", "world", "Python", "process", "classic",
    "assess", "class", "Scunthorpe", "assistant", "therapist", "cocktail", "analysis",
    "shiitake", "passage", "grape", "what", "show", "you", "not", "mess", "a", "i", "o",
    "Hello", "WORLD", "sure", "note", "Essex",
    # Names, codes and phrases with a listed word in them.
    "Maine coon", "Moby Dick", "Dick Smith", "Philip K. Dick", "cum laude", "Sheila Dikshit",
    "A55-B00B5-7", "Shitterton", "great tit", "https://example.com/a_b?q=1",
)  # fmt: skip
# Runs of text in scripts written without spaces, or read right to left, and emoji.
FOREIGN = (
    "你好世界",
    "今天天气很好",
    "我们去公园散步吧",
    "こんにちは",
    "カタカナ",
    "สวัสดีครับ",
    "วันนี้อากาศดีมาก",
    "ภาษาไทย",
    "مرحبا",
    "بالعالم",
    "שלום",
    "עולם",
    "😀",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "🇫🇷",
    "❤\ufe0f",
    "🎉🎉",
)
GAPS = (" ", " ", " ", "\n", ", ", ". ", " - ", "\n\n")

# Look-alike letters, by script: each reads as the Latin letter it is filed under.
LOOKALIKES: dict[str, dict[str, str]] = {
    "cyrillic": {
        "a": "\u0430", "c": "\u0441", "e": "\u0435", "h": "\u04bb", "i": "\u0456",
        "o": "\u043e", "s": "\u0455", "k": "\u043a", "t": "\u0442", "b": "\u0432",
    },
    "greek": {"o": "\u03bf", "i": "\u03b9", "u": "\u03c5", "k": "\u03ba", "a": "\u03b1",
              "t": "\u03c4", "b": "\u03b2"},
    # Small capitals ("ꜱʜɪᴛ"), dotless i, Latin alpha.
    "latin-extended": {"i": "\u0131", "a": "\u0251", "c": "\u1d04", "o": "\u1d0f",
                       "s": "\ua731", "u": "\u1d1c", "h": "\u029c", "b": "\u0299",
                       "t": "\u1d1b", "k": "\u1d0b", "l": "\u029f", "d": "\u1d05",
                       "e": "\u1d07"},
    "armenian": {"u": "\u057d", "o": "\u0585", "h": "\u0570", "n": "\u0578"},
    "cherokee": {"s": "\u13da", "h": "\u13bb", "t": "\u13a2", "a": "\u13aa", "b": "\u13f4",
                 "c": "\u13df", "k": "\u13e6"},
}  # fmt: skip
INVISIBLE = (
    "\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u2062", "\u034f",
    "\u200f", "\u202e", "\u2066", "\u061c",  # bidi marks and overrides of RTL text
)  # fmt: skip
COMBINING = ("\u0301", "\u0308", "\u0336", "\u0331", "\u0323", "\u20dd", "\u20e3", "\u0489")
LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "$5", "t": "7+"}


def _math(letter: str, base: int) -> str:
    return chr(base + ord(letter) - ord("a"))


def _restyle(word: str, rnd: random.Random) -> str:
    """Latin letters of one style for the whole word: fullwidth or a mathematical alphabet."""
    # Fullwidth; mathematical bold, bold italic, bold script, sans-serif bold, monospace
    # (lower case): alphabets without holes (the italic "h" is elsewhere).
    base = rnd.choice((0xFF41, 0x1D41A, 0x1D482, 0x1D4EA, 0x1D5EE, 0x1D68A))
    return "".join(
        _math(char.lower(), base) if char.isascii() and char.isalpha() else char for char in word
    )


def _lookalike(word: str, rnd: random.Random) -> str:
    table = LOOKALIKES[rnd.choice(sorted(LOOKALIKES))]
    swapped = [table.get(char, char) if rnd.random() < 0.7 else char for char in word]
    if swapped == list(word):  # at least one
        position = next((i for i, c in enumerate(word) if c in table), None)
        if position is not None:
            swapped[position] = table[word[position]]
    return "".join(swapped)


def _spaced(word: str, rnd: random.Random) -> str:
    return rnd.choice((" ", ".", "-", "_", "  ", "--")).join(word)


def _leet(word: str, rnd: random.Random) -> str:
    if len(word) < 4:
        return word
    out = [rnd.choice(LEET[char]) if char in LEET and rnd.random() < 0.5 else char for char in word]
    return "".join(out)


def _repeated(word: str, rnd: random.Random) -> str:
    letters = [i for i, char in enumerate(word) if char.isalpha()]
    if not letters:
        return word
    position = rnd.choice(letters)
    return word[:position] + word[position] * rnd.randint(3, 5) + word[position + 1 :]


def _starred(word: str, rnd: random.Random) -> str:
    # An inner vowel, not one of a run ("fuuuck"): "f*uuck" is no claimed spelling.
    inner = [
        i
        for i in range(1, len(word) - 1)
        if word[i] in "aeiou" and word[i - 1] != word[i] != word[i + 1]
    ]
    if not inner:
        return word
    position = rnd.choice(inner)
    return word[:position] + "*" + word[position + 1 :]


def _invisible(word: str, rnd: random.Random) -> str:
    position = rnd.randint(1, len(word) - 1)
    return word[:position] + rnd.choice(INVISIBLE) + word[position:]


def _combining(word: str, rnd: random.Random) -> str:
    mark = rnd.choice(COMBINING)
    return "".join(char + mark if rnd.random() < 0.6 else char for char in word)


def _cased(word: str, rnd: random.Random) -> str:
    return rnd.choice((word.upper(), word.title(), word))


DISGUISES: dict[str, Callable[[str, random.Random], str]] = {
    "plain": lambda word, _: word,
    "cased": _cased,
    "spaced": _spaced,
    "leet": _leet,
    "repeated": _repeated,
    "starred": _starred,
    "lookalike": _lookalike,
    "restyled": _restyle,
    "invisible": _invisible,
    "combining": _combining,
}


def masked_form(text: str) -> str:
    """What the filter promises for a listed word: each letter, digit or leet symbol a star.

    Gaps (spaces, dots, hyphens) stay; invisible characters and combining marks go, as
    the word is read without them.
    """
    out = []
    for char in text:
        kind = unicodedata.category(char)
        if is_invisible(char) or kind.startswith("M"):
            continue
        out.append(MASK if kind[0] in "LN" or char in "@$!|+*" else char)
    return "".join(out)


def listed_piece(rnd: random.Random, level: str = LEVEL) -> str:
    """A listed word or phrase in one or two disguises."""
    if rnd.random() < 0.2:
        first, second = rnd.choice(LISTED_PHRASES)
        return _cased(first + rnd.choice((" ", "-", "\n", "  ")) + second, rnd)
    words = LISTED_WORDS + (MILD_WORDS if level == "strict" else ())
    word = rnd.choice(words)
    names = sorted(DISGUISES)
    for name in rnd.sample(names, rnd.choice((1, 1, 2))):
        # A spelled-out word takes no second disguise inside its gaps.
        if name == "spaced":
            continue
        word = DISGUISES[name](word, rnd)
    # Letters, digits and leet symbols spelled out ("s-h-1-t"); not a star, a wildcard.
    if rnd.random() < 0.25 and word.isascii() and "*" not in word and len(word) >= 4:
        word = _spaced(word, rnd)
    return word


def build_reply(rnd: random.Random, parts: int, level: str = LEVEL) -> tuple[str, str]:
    """A reply of ``parts`` pieces, and what masking must make of it."""
    text: list[str] = []
    want: list[str] = []
    previous = "gap"
    for _ in range(parts):
        kind = rnd.choices(("english", "foreign", "listed"), (5, 3, 2))[0]
        if kind == "listed":
            piece = listed_piece(rnd, level)
            masked = masked_form(piece)
        else:
            piece = rnd.choice(ENGLISH if kind == "english" else FOREIGN)
            masked = piece
        # A gap between two pieces; a word glued to Chinese or Japanese needs none.
        if text:
            glued = "foreign" in (kind, previous) and rnd.random() < 0.4
            gap = "" if glued else rnd.choice(GAPS)
            text.append(gap)
            want.append(gap)
        text.append(piece)
        want.append(masked)
        previous = kind
    return "".join(text), "".join(want)


def stream(guard: SafetyFilter, pieces: list[str], level: str = LEVEL) -> tuple[str, list[str]]:
    masker = StreamMasker(guard, level)  # type: ignore[arg-type]
    shown = "".join(masker.feed(piece) for piece in pieces) + masker.finish()
    return shown, masker.masked


def max_held_back(guard: SafetyFilter, text: str, level: str = LEVEL) -> int:
    """Most characters fed and not yet shown, feeding one character at a time.

    For text that masking leaves alone, so shown and fed text can be compared by length.
    """
    masker = StreamMasker(guard, level)  # type: ignore[arg-type]
    shown = held = 0
    for fed, char in enumerate(text, 1):
        shown += len(masker.feed(char))
        held = max(held, fed - shown)
    assert shown + len(masker.finish()) == len(text)
    return held


def test_the_listed_words_are_listed(guard: SafetyFilter) -> None:
    for word in (*LISTED_WORDS, *(" ".join(p) for p in LISTED_PHRASES)):
        assert guard.mask_output(word, LEVEL).text == masked_form(word), word
    for word in MILD_WORDS:
        assert guard.mask_output(word, "strict").text == masked_form(word), word
    for word in (*ENGLISH, *FOREIGN):
        assert guard.mask_output(word, "strict").text == word, word


def check(
    guard: SafetyFilter, text: str, want: str, rnd: random.Random, level: str = LEVEL
) -> None:
    stored = guard.mask_output(text, level)
    assert stored.text == want
    assert guard.mask_output(stored.text, level).text == stored.text
    chunkings = [[text], list(text), pieces_of(text, rnd, 1, 3), pieces_of(text, rnd, 1, 12)]
    for pieces in chunkings:
        shown, masked = stream(guard, pieces, level)
        assert shown == stored.text, pieces
        assert masked == list(stored.masked), pieces


SEEDS = range(300)

# Failing seeds of the past, one or two per class of bug, as explicit cases.
EXPLICIT = [
    # Marks the fold kept (enclosing, ccc 0) split a word; a trailing mark stayed.
    ("fu\u20e3c\u20e3k\u20e3 you", "**** you"),
    ("Fu\u20e3Ck\u20e3In\u20e3G\u20e3 now", "******* now"),
    ("a\u0489sshhhh\u0489o\u0489l\u0489e!", "**********!"),
    ("b\u0336itc\u0336h\u0336 and s\u20ddh\u20ddi\u20ddt\u20dd", "***** and ****"),
    ("f\u0331u\u0331c\u0331k\u0331", "****"),
    # A spelled-out word ran on into Chinese characters ("fuck你好世界": no word).
    ("classic\n\nsure\nf u c k \u4f60\u597d\u4e16\u754c classic",
     "classic\n\nsure\n* * * * \u4f60\u597d\u4e16\u754c classic"),
    # Repeats in a spelled-out word, and repeats with a star.
    ("i, b.u.l.l.l.l.l.l.s.h.i.t", "i, *.*.*.*.*.*.*.*.*.*.*.*"),
    ("a-s-s-h-h-h-h-h-o-l-e.", "*-*-*-*-*-*-*-*-*-*-*."),
    ("f*ckkkkk, c*nnnnnt, bbb*tch and assh*llllle", "********, ********, ******* and ***********"),
    # A star and a leet "+" at the word's end.
    ("c*n+, sh*+\U0001f600 and *emphasis*", "****, ****\U0001f600 and *emphasis*"),
    # Repeats in a word spelled out with "_" (dropped from the word) were not seen.
    ("f u c k s_s_s_h_i_t - ok", "* * * * *_*_*_*_*_* - ok"),
    ("a_s_s_s_s_h_o_l_e", "*_*_*_*_*_*_*_*_*"),
    # Look-alikes that Unicode files under another look-alike, not a Latin letter:
    # small capitals (\u1d0b -> kra -> Cyrillic ka -> K), Greek tau, an Arabic alif
    # (reads "l") in a word glued to a Latin one.
    ("\ua731\u029c\u026a\u1d1b happens, \u0299\u026a\u1d1b\u1d04\u029c", "**** happens, *****"),
    ("f\u1d1c\u1d04\u1d0b off and \u1d00ss\u029c\u1d0f\u029f\u1d07", "**** off and *******"),
    # Greek small eta is filed under "n" with a mark: "c\u03c5\u03b7t" reads "cunt".
    ("\u0455h\u03b9\u03c4 and c\u03c5\u03b7t", "**** and ****"),
    ("\u0645\u0631\u062d\u0628\u0627\U0001d41f\U0001d42e\U0001d41c\U0001d424\n\no",
     "\u0645\u0631\u062d\u0628\u0627****\n\no"),
    ("\u043f\u0440\u0438\u0432\u0435\u0442, \u0422\u043e\u0442 \u043a\u043e\u0442, "
     "\u0432\u043e\u0442 \u0441\u043e\u043a", "\u043f\u0440\u0438\u0432\u0435\u0442, "
     "\u0422\u043e\u0442 \u043a\u043e\u0442, \u0432\u043e\u0442 \u0441\u043e\u043a"),
    # Leet symbols spelled out, "!" inside a word; two spelled-out words side by side.
    ("b ! t c h, $-h-!-7-h-3-a-d, f-u-c-k-!-n-g !", "* * * * *, *-*-*-*-*-*-*-*, *-*-*-*-*-*-* !"),
    ("b u l l s h i t s.h.i.t\non", "* * * * * * * * *.*.*.*\non"),
    ("b.u.u.u.u.u.l.l.s.h.i.t 5 h 1 +, ok", "*.*.*.*.*.*.*.*.*.*.*.* * * * *, ok"),
    # Letters spelled out with two spaces or two hyphens.
    ("what the f  u  c  k, s--h--i--t", "what the *  *  *  *, *--*--*--*"),
    # A code is no word of a phrase ("fuck ass"), and a number before a spelled word
    # is a word of its own.
    ("fu\u0441\u043a A55-B00B5-7 a s s h o l e", "**** A55-B00B5-7 * * * * * * *"),
    ("a blow j0b, blow-j0b, bull sh1t", "a **** ***, ****-***, **** ****"),
    ("a b ! and x | y | z, c-u-n-+", "a b ! and x | y | z, *-*-*-*"),
    ("f\u00fa\u0107k\u200b\u0301\n\nshow", "****\n\nshow"),
    ("i\n\n@.$.$.h.o.l.e it, $ h i t", "i\n\n*.*.*.*.*.*.* it, * * * *"),
    # A Latin word glued to a word of another script was one word with it: not masked,
    # or masked with its neighbour.
    ("\u05e2\u05d5\u05dc\u05ddCUNT ok", "\u05e2\u05d5\u05dc\u05dd**** ok"),
    ("shhhhhithead\u0628\u0627\u0644\u0639\u0627\u0644\u0645.",
     "************\u0628\u0627\u0644\u0639\u0627\u0644\u0645."),
    ("\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a"
     "\U0001d4eb\U0001d4fe\U0001d4f5\U0001d4f5\U0001d4fc\U0001d4f1\U0001d4f2\U0001d4fd",
     "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a********"),
    ("\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0455h\u0456t",
     "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22****"),
    ("bull shit\u0628\u0627\u0644\u0639\u0627\u0644\u0645",
     "**** ****\u0628\u0627\u0644\u0639\u0627\u0644\u0645"),
    ("\u0645\u0631\u062d\u0628\u0627blow\njob", "\u0645\u0631\u062d\u0628\u0627****\n***"),
    ("\u043f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, Stra\u00dfe",
     "\u043f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440, Stra\u00dfe"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "want"), EXPLICIT)
def test_explicit_cases(guard: SafetyFilter, text: str, want: str) -> None:
    check(guard, text, want, random.Random(0))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_replies(guard: SafetyFilter, seed: int) -> None:
    rnd = random.Random(seed)
    level = "strict" if seed % 3 == 0 else LEVEL
    text, want = build_reply(rnd, rnd.randint(1, 12), level)
    check(guard, text, want, rnd, level)


# Text without a space: no more than this is held back while it streams.
LAG_BOUND = 2 * MAX_WORD  # folded letters, and the marks of a Thai or Hindi word

# Held back to the end before: a run of emoji or punctuation has no word to cut before.
UNSPACED = [
    # Latin words glued to Thai, Chinese and Arabic ones: held back by the words before.
    "what\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1ashowmessWORLD"
    "youtherapist\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427youhelloassesscocktail"
    "Essex\u0e27\u0e31\u0e19\u0e19\u0e35\u0e49\u0e2d\u0e32\u0e01\u0e32\u0e28\u0e14"
    "\u0e35\u0e21\u0e32\u0e01aclasswhatEssextheworldWORLDclassicassess"
    "\u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\U0001f600" * 60,
    "!?" * 40,
    "..." * 30 + "ok",
    "\u2014" * 50,
    "hello " + "\U0001f389" * 60,
    "| a | b |\n|---|---|\n" * 6,
    "\u4f60\u597d\u4e16\u754c" * 20,
    "a1b2c3d4" * 12,
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a" * 10,
    "\u0645\u0631\u062d\u0628\u0627" * 20,
]


@pytest.mark.parametrize("text", UNSPACED)
def test_explicit_text_without_whitespace_streams(guard: SafetyFilter, text: str) -> None:
    assert max_held_back(guard, text) <= LAG_BOUND


@pytest.mark.parametrize("seed", range(60))
def test_text_without_whitespace_streams(guard: SafetyFilter, seed: int) -> None:
    rnd = random.Random(seed)
    runs = [rnd.choice((*FOREIGN, *ENGLISH)) for _ in range(rnd.randint(10, 40))]
    text = "".join(run for run in runs)
    if text == guard.mask_output(text, LEVEL).text:
        assert max_held_back(guard, text) <= LAG_BOUND


@pytest.mark.parametrize("seed", range(6))
def test_screen_equals_stored_reply_through_the_graph(make_settings: Any, seed: int) -> None:
    # The output node masks the streamed reply again: what is stored is that.
    rnd = random.Random(seed)
    level = "strict" if seed % 2 else LEVEL
    reply, want = build_reply(rnd, rnd.randint(4, 12), level)
    graph = build_graph(
        make_settings(), checkpointer=InMemorySaver(), model=PieceModel(reply=reply, longest=4)
    )
    screen = screen_of_turn(graph, "hi", level)
    state = graph.get_state(thread()).values
    assert screen == state["messages"][-1].text == want
    assert state["safety"]["masked"] == list(SafetyFilter().mask_output(reply, level).masked)


# Short innocent words, one and two letters among them: the words of a sentence spelled
# out letter by letter, where only the wider gap between words tells them apart.
SPACED_INNOCENT = (
    "the", "cat", "sat", "on", "mat", "what", "you", "not", "a", "i", "o", "is", "it", "to",
    "do", "go", "my", "we", "so", "up", "no", "ok",
)  # fmt: skip
# (gap between letters, gap between words): the second always the wider.
SPACED_GAPS = ((" ", "  "), (" ", "   "), ("  ", "   "), (".", " "), ("-", " "), (".", "  "))


def build_spaced_sentence(rnd: random.Random, level: str) -> tuple[str, str]:
    """A sentence spelled out letter by letter, and what its masked form must be."""
    listed = LISTED_WORDS + (MILD_WORDS if level == "strict" else ())
    inner, outer = rnd.choice(SPACED_GAPS)
    words = [
        rnd.choice(listed) if rnd.random() < 0.3 else rnd.choice(SPACED_INNOCENT)
        for _ in range(rnd.randint(2, 8))
    ]
    text = outer.join(inner.join(word) for word in words)
    want = outer.join(inner.join(MASK * len(w) if w in listed else w) for w in words)
    if rnd.random() < 0.5:  # inside an ordinary reply
        text, want = f"Sure: {text}, as asked.", f"Sure: {want}, as asked."
    return text, want


@pytest.mark.parametrize("seed", range(100))
def test_spaced_out_sentences(guard: SafetyFilter, seed: int) -> None:
    """Each listed word of a spaced-out sentence is masked alone, never a neighbour, and
    the stream shows what is stored ("o  I  s" of "d o  I  s e e" once read as a word)."""
    rnd = random.Random(seed)
    level = "strict" if seed % 3 == 0 else LEVEL
    text, want = build_spaced_sentence(rnd, level)
    check(guard, text, want, rnd, level)
