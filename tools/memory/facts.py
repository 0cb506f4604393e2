"""What users say about themselves: a cheap detector of self-statements, names and numbers.

No model call: a few regular expressions over the user's message (well under a
millisecond). A sentence counts as a self-statement when one of its clauses starts like
"my name is", "I'm", "I work", "I live", "I have", "I can't stand", "call me", ... and the
sentence is neither a question nor a request ("Explain like I'm five: ...", "Give me ...").
The sentence is kept in the user's own words; nothing is paraphrased, so nothing is
invented. The same detector tells the summariser which names and numbers it must keep.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Curly quotes and apostrophes as people type them on phones.
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})

# A sentence ends at . ! ? followed by a space (not inside "ada.l@example.com" or "3.5").
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Words that open a sentence without saying anything ("Hi, I'm Priya", "Actually, ...").
_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|ok|okay|so|well|also|oh|and|but|actually|anyway|by the way|btw|"
    r"fyi|just so you know|for the record|for your information|just to let you know|"
    r"(?:please )?remember (?:this|that)(?: for later)?|"
    r"please note|note|remember|please remember|don't forget|do not forget|for later|"
    r"keep in mind|good (?:morning|evening)|"
    r"thanks|thank you)\b[\s,:;!-]*)+",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"^(?:please\s+)?(?:explain|tell|give|write|show|help|list|suggest|recommend|describe|"
    r"summari[sz]e|translate|find|make|create|compare|define|calculate|check|fix|draft|"
    r"can you|could you|would you|will you|do you|did you|what|how|why|when|where|who|"
    r"which|is|are|should|shall|may)\b",
    re.IGNORECASE,
)
# Clauses that say something lasting about the speaker.
_STATEMENT = re.compile(
    r"^(?:"
    r"(?:my|our)\s+(?:[\w'-]+\s+){0,3}?(?:is|are|was|were|'s|has|have|=|:)\s"
    r"|(?:my|our)\s+(?:name|code|number|pin|password|birthday|address|email|phone|job|wife|"
    r"husband|partner|son|daughter|kids|children|mother|father|mum|mom|dad|brother|sister|"
    r"dog|cat|favourite|favorite)\b"
    r"|i(?:'m| am)\s+(?!(?:not sure|trying|looking|wondering|asking|curious|confused|stuck|"
    r"getting|having|unable|sorry|just|here|going to ask|interested in knowing|new here|"
    r"back|done|fine|good|ok|okay|glad|happy to|afraid)\b)\S"
    r"|i\s+(?:work|live|study|teach|was born|grew up|have|own|drive|speak|like|love|enjoy|"
    r"prefer|hate|dislike|can't stand|cannot stand|can't eat|cannot eat|don't eat|"
    r"do not eat|never eat|don't like|do not like|don't drink|do not drink|play|moved|"
    r"got married|go by|am allergic|follow|keep|support|volunteer|run|cycle|swim|"
    r"changed my mind)\b(?!\s+(?:a question|a problem|an issue|a doubt|no idea|to ask)\b)"
    r"|i've\s+(?:got|been|lived|worked|had|changed)\b"
    r"|call me\b|we\s+(?:have|live|are)\b"
    r")",
    re.IGNORECASE,
)
_CLAUSE_SPLIT = re.compile(r"\s*(?:[,;:]|\s-\s|\band\b|\bbut\b)\s*", re.IGNORECASE)

_NUMBER = re.compile(r"\d(?:[\d,.:/-]*\d)?")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20",
}  # fmt: skip
_NAME = re.compile(r"\b[A-ZÀ-ÖØ-Þ][\w'-]*", re.UNICODE)
# Capitalised words that are not names: pronouns, greetings, calendar words.
_NOT_NAMES = {
    "i", "i'm", "i've", "i'd", "i'll", "hi", "hello", "hey", "ok", "okay", "please", "thanks",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "mr", "mrs", "ms", "dr",
}  # fmt: skip


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split at . ! ? and line breaks), trimmed, non-empty."""
    text = text.translate(_QUOTES)
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip(" \t.!?")]


def without_filler(sentence: str) -> str:
    """``sentence`` without the words that open it without saying anything ("Hi, so, ...")."""
    return _FILLER.sub("", sentence.translate(_QUOTES).strip()).strip()


def is_self_statement(sentence: str) -> bool:
    """True when ``sentence`` states something about the speaker (not a question or request).

    Examples that count: "Hi, I'm Priya.", "My locker code is 4817.", "I can't stand
    coriander.", "Please remember this for later: my PIN is 1234.". Examples that do not:
    "What's my name?", "Explain like I'm five: DNS", "I'm trying to fix my code.".
    """
    sentence = sentence.translate(_QUOTES).strip()
    if not sentence or sentence.endswith("?"):
        return False
    body = _FILLER.sub("", sentence).strip()
    if not body or _REQUEST.match(body):
        return False
    return any(_STATEMENT.match(_FILLER.sub("", clause)) for clause in _CLAUSE_SPLIT.split(body))


def self_statements(text: str) -> list[str]:
    """The sentences of a user's message that state something about themselves, in order."""
    return [s for s in sentences(text) if is_self_statement(s)]


def key_terms(text: str) -> set[str]:
    """Names and numbers in ``text``, lower-cased: what a summary of it must keep.

    Numbers are digit strings ("4817", "3"; number words count as their digits); names are
    capitalised words that do not open a sentence or clause ("Hi, I'm Priya" -> priya).
    """
    text = text.translate(_QUOTES)
    terms = {re.sub(r"\D", "", n) for n in _NUMBER.findall(text)}
    terms |= {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS}
    for sentence in sentences(text):
        for clause in _CLAUSE_SPLIT.split(sentence):
            words = _NAME.findall(clause)
            starts = clause.lstrip(" \"'(").split(" ", 1)[0]
            for word in words:
                if word == starts or word.lower() in _NOT_NAMES:
                    continue
                terms.add(word.lower().removesuffix("'s").rstrip("'"))
    return {t for t in terms if t}


def written_terms(text: str, *, loose: bool = False) -> list[str]:
    """The names and numbers of ``text`` as written ("Priya", "4817"), in order, once each.

    Args:
        text: A sentence or a few.
        loose: Take every capitalised word as a name, also one that opens a clause. For
            texts shortened to their content words ("Priya, code 4817"), where the
            words that opened a clause ("I'm", "my") are gone and a name may come first.
    """
    text = text.translate(_QUOTES)
    if loose:
        wanted = {re.sub(r"\D", "", n) for n in _NUMBER.findall(text)} | {
            w.lower().removesuffix("'s").rstrip("'")
            for w in _NAME.findall(text)
            if w.lower() not in _NOT_NAMES
        }
        wanted |= {
            _NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS
        }
    else:
        wanted = key_terms(text)
    found: dict[str, tuple[int, str]] = {}
    for match in re.finditer(r"\d(?:[\d,.:/-]*\d)?|[\w'-]+", text):
        word = match.group(0)
        term = re.sub(r"\D", "", word) if word[0].isdigit() else word.lower()
        term = _NUMBER_WORDS.get(term, term).removesuffix("'s").rstrip("'")
        if term in wanted and term not in found:
            shown = term if word[0].isdigit() or term.isdigit() else word.removesuffix("'s")
            found[term] = (match.start(), shown.rstrip("'"))
    in_order = [t for _, t in sorted(found.values())]
    # A term not seen as a whole word ("1" of "Rex1") goes last, unless a shown one has it.
    rest = sorted(t for t in wanted - set(found) if missing_terms([t], " ".join(in_order)))
    return in_order + rest


def missing_terms(required: Iterable[str], text: str) -> list[str]:
    """The required names and numbers that ``text`` does not contain (sorted)."""
    found = key_terms(text) | set(re.findall(r"[\w'-]+", text.translate(_QUOTES).lower()))
    found |= {_NUMBER_WORDS.get(w, w) for w in list(found)}
    digits = {re.sub(r"\D", "", n) for n in _NUMBER.findall(text)}
    return sorted(t for t in set(required) if t not in found and t not in digits)
