"""Serious-harm patterns: the regexes of ``prompts/safety.yaml``, validated and compiled.

The file's shape (keys, types, names) is a pydantic model; what a schema cannot say is
checked while compiling: every ``{{fragment}}`` exists, every pattern is a regex, has no
upper-case letter (the text it meets is lower case) and does not match the empty text
(it would block every message). The file's header comment explains how patterns match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from tools.text import Location, describe_validation_error, parse_yaml

__all__ = [
    "DEFAULT_PATTERNS_FILE",
    "RESERVED_CATEGORIES",
    "HarmCategory",
    "harm_categories",
    "non_literal_frames",
]

DEFAULT_PATTERNS_FILE = Path(__file__).resolve().parents[2] / "prompts" / "safety.yaml"
# The filter's own verdict categories; a harm category of the same name would be ambiguous.
RESERVED_CATEGORIES = frozenset({"profanity", "strict_term"})

# Compiled with these flags, "{{name}}" replaced by a fragment. No IGNORECASE: the text is
# lower-cased first, and the flag makes searching ~5x slower.
_PATTERN_FLAGS = re.MULTILINE | re.VERBOSE
# An upper-case letter that is no escape (\S, \W, ...) would never match folded text.
_UPPER_LITERAL_RE = re.compile(r"(?<!\\)[A-Z]")
_FRAGMENT_REF_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class HarmCategory:
    """One category of the patterns file, compiled.

    Attributes:
        key: Its name in the file (``"weapons"``), the verdict's rule.
        hazard: The taxonomy category it belongs to (``"indiscriminate_weapons"``), the
            verdict's category.
        reason: What the user is told, whitespace collapsed ("weapons and explosives").
        patterns: The compiled regexes; any match refuses the message.
        triggers: Plain lower-case substrings; the patterns run only on text holding one.
            Empty means always run them.

    """

    key: str
    hazard: str
    reason: str
    patterns: tuple[re.Pattern[str], ...]
    triggers: tuple[str, ...]

    def applies(self, norm: str) -> bool:
        """Tell whether the patterns need to run (a trigger is in the folded text)."""
        return not self.triggers or any(trigger in norm for trigger in self.triggers)


# --- the file's schema ----------------------------------------------------------------


def _lower_case(text: str) -> str:
    if text != text.lower():
        raise ValueError("must be lower case (the text it is looked for in is lower case)")
    return text


def _not_reserved(key: str) -> str:
    if key in RESERVED_CATEGORIES:
        raise ValueError("is reserved (the filter's own verdicts use it)")
    return key


# Kept as written (no stripping): in VERBOSE mode whitespace means nothing anyway.
_Regex = Annotated[str, StringConstraints(pattern=r"\S")]
_Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
_Trigger = Annotated[str, StringConstraints(pattern=r"\S"), AfterValidator(_lower_case)]


class _CategorySpec(BaseModel):
    """One harm category as written in the file."""

    # strict: a number is no regex; extra="forbid": a misspelt key is an error.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    hazard: _Key
    reason: Annotated[str, StringConstraints(pattern=r"\S")]
    patterns: Annotated[list[_Regex], Field(min_length=1)]
    triggers: list[_Trigger] = Field(default_factory=list)


class _PatternsFile(BaseModel):
    """The whole patterns file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: Any = None  # informative; not checked
    fragments: dict[str, _Regex] | None = None
    frames: dict[_Key, _Regex] | None = None
    categories: Annotated[
        dict[Annotated[_Key, AfterValidator(_not_reserved)], _CategorySpec], Field(min_length=1)
    ]


def _where(location: Location) -> tuple[str, str]:
    """Name an entry of the patterns file and say what it must be (for error messages)."""
    match location:
        case ("fragments",):
            return "'fragments'", "a mapping of name -> regex text"
        case ("fragments", name, "[key]"):
            return f"fragment name {name!r}", "a string"
        case ("fragments", name):
            return f"fragment {name!r}", "a non-empty string"
        case ("categories",):
            return "'categories'", "a non-empty mapping of name -> {reason, patterns}"
        case ("categories", key, "[key]"):
            return f"category name {key!r}", "lower_snake_case (a-z, 0-9, _)"
        case ("categories", key):
            return (
                f"category {key!r}",
                "a mapping with 'hazard', 'reason', 'patterns' (and optionally 'triggers')",
            )
        case ("categories", key, "hazard"):
            return (
                f"category {key!r}: 'hazard'",
                "a category key of prompts/safety_taxonomy.yaml (lower_snake_case)",
            )
        case ("categories", key, "reason"):
            return f"category {key!r}: 'reason'", "a non-empty string"
        case ("categories", key, "patterns"):
            return f"category {key!r}: 'patterns'", "a non-empty list of regexes"
        case ("categories", key, "patterns", int(number)):
            return f"category {key!r}, pattern {number + 1}", "a non-empty string"
        case ("categories", key, "triggers"):
            return f"category {key!r}: 'triggers'", "a list of lower-case strings"
        case ("categories", key, "triggers", int(number)):
            return f"category {key!r}, trigger {number + 1}", "a non-empty string"
        case ("frames",):
            return "'frames'", "a mapping of name -> regex text"
        case ("frames", name, "[key]"):
            return f"frame name {name!r}", "lower_snake_case (a-z, 0-9, _)"
        case ("frames", name):
            return f"frame {name!r}", "a non-empty string"
    return "the file", (
        "a mapping with 'categories' (and optionally 'version', 'fragments', 'frames')"
    )


# --- loading --------------------------------------------------------------------------


def harm_categories(path: Path) -> tuple[HarmCategory, ...]:
    """Read, validate and compile a patterns file (cached until the file changes).

    Args:
        path: The YAML file, e.g. :data:`DEFAULT_PATTERNS_FILE`.

    Returns:
        The categories in file order.

    Raises:
        ValueError: The file is missing or unreadable, not YAML (a key given twice
            included), breaks the schema, or holds a bad pattern. The message starts
            with "safety patterns file <path>:" and names the category and the field.

    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ValueError(f"safety patterns file {path}: cannot read it ({exc})") from exc
    return _load(path, mtime)[0]


def non_literal_frames(path: Path) -> tuple[re.Pattern[str], ...]:
    """The ``frames`` of a patterns file, compiled: words that make a harm hit non-literal.

    A frame (a named game: "in Monopoly"; a dish or a figure of speech: "explosive
    flavour") in the same sentence as every hit sends the message on to the judge
    instead of refusing it outright (:meth:`SafetyFilter.check_input`).

    Raises:
        ValueError: As :func:`harm_categories`.

    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ValueError(f"safety patterns file {path}: cannot read it ({exc})") from exc
    return _load(path, mtime)[1]


@lru_cache(maxsize=16)
def _load(path: Path, mtime: int) -> tuple[tuple[HarmCategory, ...], tuple[re.Pattern[str], ...]]:
    del mtime  # part of the cache key only

    def problem(message: str) -> ValueError:
        return ValueError(f"safety patterns file {path}: {message}")

    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise problem(f"cannot read it ({exc})") from exc
    except yaml.YAMLError as exc:
        raise problem(f"not valid YAML: {exc}") from exc
    try:
        spec = _PatternsFile.model_validate(data)
    except ValidationError as exc:
        raise problem(describe_validation_error(exc, _where)) from None

    fragments: dict[str, str] = {}

    def substitute(source: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in fragments:
                raise problem(f"{where} uses unknown fragment {{{{{name}}}}}")
            # The newline ends a trailing "# comment" of the fragment (VERBOSE mode).
            return f"(?:{fragments[name]}\n)"

        return _FRAGMENT_REF_RE.sub(replace, source)

    for name, body in (spec.fragments or {}).items():
        # A fragment may use the fragments defined above it.
        fragments[name] = substitute(body, f"fragment {name!r}")

    def compile_one(source: str, where: str) -> re.Pattern[str]:
        expanded = substitute(source, where)
        if _UPPER_LITERAL_RE.search(expanded):
            raise problem(f"{where} has an upper-case letter; the text it sees is lower case")
        try:
            pattern = re.compile(expanded, _PATTERN_FLAGS)
        except re.error as exc:
            raise problem(f"{where} is not a valid regex: {exc}") from exc
        if pattern.search("") is not None:
            raise problem(f"{where} matches the empty text, so it would match everywhere")
        return pattern

    compiled: list[HarmCategory] = []
    for key, category in spec.categories.items():
        patterns = [
            compile_one(source, f"category {key!r}, pattern {number}")
            for number, source in enumerate(category.patterns, 1)
        ]
        reason = " ".join(category.reason.split())
        compiled.append(
            HarmCategory(key, category.hazard, reason, tuple(patterns), tuple(category.triggers))
        )
    frames = tuple(
        compile_one(source, f"frame {name!r}") for name, source in (spec.frames or {}).items()
    )
    return tuple(compiled), frames
