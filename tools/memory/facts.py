"""What users say about themselves: a cheap detector of self-statements, names and numbers.

No model call: a few regular expressions over the user's message (well under a
millisecond). A sentence counts as a self-statement when one of its clauses starts like
"my name is", "I'm", "I work", "I live", "I have", "I can't stand", "call me", ... and the
sentence is neither a question nor a request ("Explain like I'm five: ...", "Give me ...").
The sentence is kept in the user's own words; nothing is paraphrased, so nothing is
invented. The same detector tells the summariser which names and numbers it must keep;
a number is read whole, in a canonical form that keeps what it means (:func:`numbers`:
"12.50" stays "12.50", "5:30" stays "5:30"), so a summary that turned it into "1250" or
"530" has lost it. The form is the same in every locale and script: "12,50" is "12.50",
"1 250 000", "1.250.000" and "12,50,000" (Indian) are "1250000", "17h30" is "17:30",
"٤٨١٧" and "４８１７" are "4817", "12 noon" is "12:00".
"""

from __future__ import annotations

import re
import unicodedata
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

# --- numbers: each read as one term, in a canonical form that keeps what it means ---------
#
# A number is compared by what it says, not by its digits alone: "12.50" is not "1250",
# "5:30" is not "530". Forms are tried in this order; each claims its text, so a date is
# never read again as three numbers. Canonical forms contain no comma or semicolon (a
# summary's "Key facts:" line is comma-separated) and read back as themselves.
#
# Locales group thousands and mark decimals differently ("1,250.50", "1.250,50",
# "1 250,50", "1'250.50"), so the same text can mean two numbers in two countries. The
# rule (see :func:`numbers`): a separator followed by exactly three digits and then no
# more digits groups thousands; "," or "." followed by one, two or four and more digits
# is a decimal mark. Three digits after the mark is how every locale groups, whereas
# a price or a measure rarely carries exactly three decimals; a leading 0 ("0.125") is
# never grouped, so it stays a decimal.
_SEP = r"[ .-]?"
_DATE_END = r"(?![\d/-]|\.\d)"
# Thousands separators: comma, dot, apostrophe (Swiss, also typed curly), space, no-break
# space, narrow no-break space (French), thin space, the Arabic thousands separator.
_GROUP = "[,.'\u2019 \u00a0\u202f\u2009\u066c]"
_NUMBER_FORMS: list[tuple[str, re.Pattern[str]]] = [
    # International phone numbers: "+44 20 7946 0958", "+1 (555) 123-4567".
    ("phone_plus", re.compile(rf"(?<![\w+])\+\d{{1,4}}(?:{_SEP}(?:\(\d{{1,5}}\)|\d{{1,8}}))+")),
    # An area code in brackets: "(555) 123-4567".
    ("phone_area", re.compile(r"(?<![\w(])\(\d{2,5}\)(?:[ .-]?\d{2,8})+(?!\d)")),
    # Dates, year first ("2026-11-30", "2026/11/30") or last ("30/11/2026", "30.11.2026").
    ("date_ymd", re.compile(r"(?<![\d.,/-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _DATE_END)),
    ("date_dmy", re.compile(r"(?<![\d.,/-])(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})" + _DATE_END)),
    # National phone numbers in groups, a trunk 0 first: "07700 900123", "020 7946 0958".
    ("phone_zero", re.compile(r"(?<![\w.,:/+-])0\d{1,4}(?:[ -]\d{2,8})+(?![\w-])")),
    # Three or more groups joined by one separator, dashes, spaces or dots: "555-123-4567",
    # "555 123 4567", "555.123.4567", "12-345-678" (a phone number when 7+ digits).
    (
        "grouped",
        re.compile(r"(?<![\w.,:/+-])\d{2,5}([ .-])\d{2,5}(?:\1\d{2,5})+(?![\w-]|[.,]\d)"),
    ),
    # A local phone number, three digits, a dash, four: "555-0100" (a range is "1990-2000"
    # or "5-7": two groups of other lengths stay two numbers; a pair of this shape that reads
    # as a range, "100-2000", does too: see :func:`_is_range`).
    ("local", re.compile(r"(?<![\w.,:/+-])\d{3}-\d{4}(?![\w-]|[.,]\d)")),
    # Times of day: "5:30", "17:05:09", "17h30" (French), "9.30am", "9:30 p.m." (a dot
    # only before am/pm: "9.30" alone is a decimal).
    (
        "time",
        re.compile(
            r"(?<![\d:.,])(\d{1,2})"
            r"(?::(\d{2})(?::(\d{2}))?|[hH](\d{2})|\.(\d{2})(?=\s?[ap]\.?m\b))"
            r"(?![\d:]|\.\d)(?:\s?([ap])\.?m\b\.?)?",
            re.IGNORECASE,
        ),
    ),
    # A whole hour said with its half of the day: "5pm", "5 p.m.", "12 noon", "12
    # midnight", "7 o'clock" (what "17:00", "12:00", "0:00", "7:00" say).
    (
        "hour",
        re.compile(
            r"(?<![\d:.,])(\d{1,2})"
            r"(?:\s?([ap])\.?m\b\.?|\s+(noon|midday|midnight)\b|\s?o['\u2019]?\s?clock\b)",
            re.IGNORECASE,
        ),
    ),
    # A day and a month, or a fraction: "11/30", "3/4".
    ("slash", re.compile(r"(?<![\d/.,])(\d{1,2})/(\d{1,2})(?![\d/])")),
    # Versions: "v2.1", "version 3.10".
    ("version", re.compile(r"(?<![\w.])(?:v|version\s+)(\d+(?:\.\d+)*)(?![\d])", re.IGNORECASE)),
    # Everything else: "4817", "1,250" / "1.250" / "1 250" (thousands), "12.50" / "12,50"
    # (decimals), "1.250,50", "-3", "minus 3", ".5", "7%".
    (
        "plain",
        re.compile(
            r"(?P<sign>(?<![\w.,:/+\-\u2212])[-\u2212](?=\.?\d)|\bminus\s+(?=\.?\d))?"
            r"(?:"
            # Grouped thousands, one separator throughout, then maybe a decimal mark that
            # is not that separator: "1,250", "1 250 000", "1.250,50", "1'250.5".
            rf"(?<!\d)(?P<int>[1-9]\d{{0,2}}(?P<gs>{_GROUP})\d{{3}}(?:(?P=gs)\d{{3}})*)"
            r"(?!\d|(?P=gs)\d)(?:(?!(?P=gs))[.,](?P<dec>\d+))?"
            # Indian grouping, by twos before the last three: "12,50,000" (12 lakh),
            # "1,20,00,000" (1 crore), "12,50,000.50".
            r"|(?<![\d,])(?P<lakh>[1-9]\d?(?:,\d{2})+,\d{3})(?!\d|,\d)(?:\.(?P<ldec>\d+))?"
            # A decimal comma: "12,50", "0,125", not one of a list ("1,2,3").
            r"|(?<!\d,)(?P<cint>\d+),(?P<cdec>\d+)(?!\d|[.,]\d)"
            # Digits, and any dotted parts: "4817", "12.50", "1.2.10", ".5".
            r"|(?P<dint>\d+|(?<![\w.])(?=\.\d))"
            r")"
            r"(?P<frac>(?:\.\d+)*)"
            r"(?P<pct>\s?%|\s+per\s?cent\b)?",
            re.IGNORECASE,
        ),
    ),
]
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20",
}  # fmt: skip
# Ordinals keep a number ("first" keeps the "1" of "1st") but are never one a summary must
# keep: "first" and "second" are mostly ordinary words ("at first", "wait a second").
_ORDINAL_WORDS = {
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6",
    "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10", "eleventh": "11",
    "twelfth": "12", "thirteenth": "13", "fourteenth": "14", "fifteenth": "15",
    "sixteenth": "16", "seventeenth": "17", "eighteenth": "18", "nineteenth": "19",
    "twentieth": "20",
}  # fmt: skip
# "V2" of "V2.1" is a version, not a name.
_NAME = re.compile(r"\b(?![Vv]\d)[A-ZÀ-ÖØ-Þ][\w'-]*", re.UNICODE)
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


def _is_range(low: str, high: str) -> bool:
    """True when two digit groups joined by a dash read as a range, not one phone-like code.

    A range's bounds are written as numbers: no leading zero, the first below the second,
    and round, as people pick them ("100-2000", "250-1500", "125-1000"; a bound is round
    when it ends in 0 or is a multiple of 25). A code's groups are arbitrary digits, often
    with a leading zero or a descent ("555-0100", "867-5309", "555-1234").

    Args:
        low: the digits before the dash (ASCII digits only).
        high: the digits after it.
    """

    def round_(group: str) -> bool:
        return group.endswith("0") or int(group) % 25 == 0

    if low.startswith("0") or high.startswith("0") or int(low) >= int(high):
        return False
    return round_(low) and round_(high)


def _canonical(form: str, match: re.Match[str]) -> str | None:
    """The canonical term of a number read as ``form``, or None when it is not one after all."""
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if form == "phone_plus":
        return "+" + digits if len(digits) >= 7 else None
    if form == "local" and _is_range(*text.split("-")):
        return None  # "100-2000 words": two numbers, read apart by the forms after this one
    if form in ("phone_area", "grouped", "local"):
        return digits if len(digits) >= 7 else None
    if form == "phone_zero":
        return digits if len(digits) >= 9 else None
    if form == "date_ymd":
        year, _, month, day = match.groups()
        if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
            return None
        return f"{year}-{int(month):02d}-{int(day):02d}"
    if form == "date_dmy":
        first, sep, second, year = match.groups()
        a, b = int(first), int(second)
        # "1.2.10" is a version: a date with dots has a four-digit year.
        if (sep == "." and len(year) == 2) or not (0 < a <= 31 and 0 < b <= 31 and min(a, b) <= 12):
            return None
        return f"{a:02d}/{b:02d}/{year}"
    if form == "time":
        hours, colon, seconds, french, dotted, am_pm = match.groups()
        minutes = colon or french or dotted
        hour = int(hours)
        if hour > 24 or int(minutes) > 59 or (seconds and int(seconds) > 59):
            return None
        if am_pm and 1 <= hour <= 12:  # "9:30 pm" is "21:30", "12:15 am" is "0:15"
            hour = hour % 12 + (12 if am_pm.lower() == "p" else 0)
        return f"{hour}:{minutes}" + (f":{seconds}" if seconds else "")
    if form == "hour":
        hour, am_pm, said = int(match.group(1)), match.group(2), match.group(3)
        if said:  # "12 noon", "12 midnight": only twelve is either
            return None if hour != 12 else ("0:00" if said.lower() == "midnight" else "12:00")
        if not 1 <= hour <= 12:
            return None
        if am_pm:
            hour = hour % 12 + (12 if am_pm.lower() == "p" else 0)
        return f"{hour}:00"
    if form == "slash":
        return f"{int(match.group(1))}/{int(match.group(2))}"
    if form == "version":
        return "v" + match.group(1)
    # Thousands separators go; the decimal mark becomes a point, and it and any trailing
    # zeros stay: "3.10" is not "3.1" as a version, and a needless retry costs less than a
    # changed number let through.
    if match.group("int") is not None:
        whole, decimals = re.sub(r"\D", "", match.group("int")), match.group("dec")
    elif match.group("lakh") is not None:
        whole, decimals = re.sub(r"\D", "", match.group("lakh")), match.group("ldec")
    elif match.group("cint") is not None:
        whole, decimals = match.group("cint"), match.group("cdec")
    else:
        whole, decimals = match.group("dint") or "0", None
    whole += ("." + decimals if decimals else "") + match.group("frac")
    sign = "-" if match.group("sign") else ""
    return sign + whole + ("%" if match.group("pct") else "")


def numbers(text: str) -> list[tuple[int, int, str]]:
    """The numbers of ``text`` as (start, end, canonical term), in order.

    Each is read whole, in a form that keeps what it means: "12.50" -> "12.50" (never
    "1250"), "1,250" -> "1250" (a thousands separator), "5:30" -> "5:30", "2026/11/30" ->
    "2026-11-30", "30.11.2026" -> "30/11/2026", "+44 20 7946 0958" -> "+442079460958",
    "07700 900123" -> "07700900123", "555 123 4567" -> "5551234567", "-3" and "minus 3"
    -> "-3", "7 percent" -> "7%", "version 2.1" -> "v2.1". Leading zeros stay ("007" is a
    code, not 7). A canonical term reads back as itself.

    Any common locale reads to the same term: thousands grouped by ",", ".", "'", a
    space, a no-break or narrow no-break space ("1,250,000", "1.250.000", "1'250'000",
    "1 250 000" -> "1250000") and a decimal comma or point ("12,50", "12.50" ->
    "12.50"; "1.250,50", "1,250.50" -> "1250.50"); times as "17:30", "17h30", "5.30pm"
    and "5:30 p.m." -> "17:30" (am/pm read as the 24-hour clock).

    Ambiguous forms are decided by one rule: a separator followed by exactly three digits
    and then no more digits groups thousands ("1,250" and "1.250" -> "1250", "3.141" ->
    "3141"); "," or "." followed by one, two, or four and more digits is a decimal mark
    ("12,50", "3,4", "3,14159"). Every locale groups by threes, while prices and measures
    rarely carry exactly three decimals; a number starting "0" is never grouped, so
    "0,125" -> "0.125". A grouping separator is one character used throughout, and a
    decimal mark differs from it ("1,250.50"); a comma between digits of a list ("1,2,3")
    is no decimal mark. Digits in spaced groups are one number ("101 102 103" ->
    "101102103"), as a phone number or "1 250 000" needs.

    Digits of every script count as their value ("٤٨١٧", "४८१७", "４８１７" -> "4817"; the
    Arabic marks "٫" and "٬" as decimal mark and grouping). Indian grouping, by twos
    before the last three, is one number ("12,50,000" -> "1250000", "1,20,00,000.50" ->
    "12000000.50"). Three digits, a dash and four are a local phone number ("555-0100" ->
    "5550100", "867-5309" -> "8675309") unless they read as a range: ascending, no leading
    zero, both bounds round ("100-2000 words" -> "100", "2000"; see :func:`_is_range`);
    other pairs ("1990-1995", "5-7", "5–10") stay two numbers. A whole hour said with
    its half of the day is a time: "5pm" -> "17:00", "12 noon" -> "12:00", "12 midnight"
    -> "0:00", "7 o'clock" -> "7:00".
    """
    found: list[tuple[int, int, str]] = []
    rest = ascii_digits(text)
    for form, pattern in _NUMBER_FORMS:
        taken = []
        for match in pattern.finditer(rest):
            value = _canonical(form, match) if match.group(0) else None
            if value is not None:
                taken.append((match.start(), match.end(), value))
        if taken:  # what a form took is not read again by the next (a date is not 3 numbers)
            pieces, at = [], 0
            for start, end, _ in taken:
                pieces += [rest[at:start], " " * (end - start)]
                at = end
            rest = "".join(pieces) + rest[at:]
        found += taken
    return sorted(found)


def ascii_digits(text: str) -> str:
    """``text`` with every decimal digit of any script as its ASCII digit, same length.

    "٤٨١٧" (Arabic-Indic), "४८१७" (Devanagari) and "４８１７" (full width) read as "4817";
    the Arabic decimal separator "٫" as ".". One character for one, so positions in the
    result are positions in ``text``.
    """
    if text.isascii():
        return text
    return "".join(
        "." if char == "\u066b" else str(unicodedata.decimal(char)) if char.isdecimal() else char
        for char in text
    )


def _number_words(text: str) -> set[str]:
    """The number words of ``text`` as digits ("three" -> "3")."""
    return {_NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS}


def _words(text: str) -> list[re.Match[str]]:
    """The words of ``text`` with a letter in them ("Priya", "Rex1"; numbers are read apart)."""
    return [m for m in re.finditer(r"[\w'-]+", text) if any(c.isalpha() for c in m.group(0))]


def as_term(shown: str) -> str:
    """The term a name or number shown by :func:`written_terms` stands for ("Priya" -> priya)."""
    shown = shown.translate(_QUOTES).strip()
    read = numbers(shown)
    if len(read) == 1 and read[0][:2] == (0, len(shown)):
        return read[0][2]
    word = shown.lower().removesuffix("'s").rstrip("'")
    return _NUMBER_WORDS.get(word, word)


def key_terms(text: str) -> set[str]:
    """Names and numbers in ``text``, lower-cased: what a summary of it must keep.

    Numbers are in their canonical form (:func:`numbers`: "4817", "12.50", "5:30",
    "2026-11-30"); number words count as their digits ("three" -> "3"); names are
    capitalised words that do not open a sentence or clause ("Hi, I'm Priya" -> priya).
    """
    text = text.translate(_QUOTES)
    terms = {value for _, _, value in numbers(text)} | _number_words(text)
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
    """The names and numbers of ``text`` as shown ("Priya", "4817", "12.50"), in order, once each.

    Names are shown as written; numbers in their canonical form (:func:`numbers`), which
    has no comma, so a list of terms can be joined with commas and read back.

    Args:
        text: A sentence or a few.
        loose: Take every capitalised word as a name, also one that opens a clause. For
            texts shortened to their content words ("Priya, code 4817"), where the
            words that opened a clause ("I'm", "my") are gone and a name may come first.
    """
    text = text.translate(_QUOTES)
    read = numbers(text)
    if loose:
        wanted = {value for _, _, value in read} | _number_words(text)
        wanted |= {
            w.lower().removesuffix("'s").rstrip("'")
            for w in _NAME.findall(text)
            if w.lower() not in _NOT_NAMES
        }
    else:
        wanted = key_terms(text)
    # A number inside a word ("1" of "Rex1") is not seen on its own; see below.
    tokens = [(at, value, value) for at, _, value in read if not text[at - 1 : at].isalpha()]
    for match in _words(text):
        word = match.group(0)
        term = _NUMBER_WORDS.get(word.lower(), word.lower()).removesuffix("'s").rstrip("'")
        shown = term if term.isdigit() else word.removesuffix("'s").rstrip("'")
        tokens.append((match.start(), term, shown))
    found: dict[str, tuple[int, str]] = {}
    for start, term, shown in sorted(tokens):
        if term in wanted and term not in found:
            found[term] = (start, shown)
    in_order = [t for _, t in sorted(found.values())]
    # A term not seen as a whole word ("1" of "Rex1") goes last, unless a shown one has it.
    rest = sorted(t for t in wanted - set(found) if missing_terms([t], " ".join(in_order)))
    return in_order + rest


def missing_terms(required: Iterable[str], text: str) -> list[str]:
    """The required names and numbers (terms as :func:`key_terms` gives them) not in ``text``.

    A number counts only in its own canonical form: "1250" does not keep "12.50".
    Returns them sorted.
    """
    text = text.translate(_QUOTES)
    found = key_terms(text) | {m.group(0).lower() for m in _words(text)}
    found |= {_NUMBER_WORDS.get(w, _ORDINAL_WORDS.get(w, w)) for w in list(found)}
    return sorted(t for t in set(required) if t not in found)
