"""The harm taxonomy (``prompts/safety_taxonomy.yaml``) and the policy of each safety level.

The categories are those of the MLCommons AILuminate taxonomy as Llama Guard 3 publishes
them (S1 violent crimes ... S14 code interpreter abuse). Every layer of the input check
names one of them in its verdict; the settings say which ones each level refuses
(``safety.refuse``), and :class:`Policy` answers "does this level refuse that category?".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from tools.text import Location, describe_validation_error, parse_yaml

__all__ = [
    "DEFAULT_TAXONOMY_FILE",
    "LEVELS",
    "Hazard",
    "Policy",
    "Taxonomy",
    "load_taxonomy",
]

DEFAULT_TAXONOMY_FILE = Path(__file__).resolve().parents[2] / "prompts" / "safety_taxonomy.yaml"
LEVELS = ("strict", "moderate", "relaxed")


@dataclass(frozen=True)
class Hazard:
    """One category of the taxonomy.

    Attributes:
        key: Its name in the file and in verdicts (``"indiscriminate_weapons"``).
        code: The Llama Guard 3 code (``"S9"``).
        name: A short human name (``"Indiscriminate weapons"``).
        description: What falls under it, in a sentence or two (the judge reads it).
        note: Added to a refusal in this category (a crisis line for self-harm), or None.

    """

    key: str
    code: str
    name: str
    description: str
    note: str | None = None

    @property
    def reason(self) -> str:
        """How a refusal names the category: ``"self-harm (note)"``, lower case."""
        name = self.name[0].lower() + self.name[1:]
        return f"{name} ({self.note})" if self.note else name


@dataclass(frozen=True)
class Taxonomy:
    """The hazard categories in file order, by key and by code."""

    hazards: tuple[Hazard, ...]

    def __contains__(self, key: object) -> bool:
        return any(h.key == key for h in self.hazards)

    def __getitem__(self, key: str) -> Hazard:
        for hazard in self.hazards:
            if hazard.key == key:
                return hazard
        raise KeyError(key)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every category key, in file order."""
        return tuple(h.key for h in self.hazards)

    def by_code(self, code: str) -> Hazard | None:
        """The category with this code (``"S9"``, case-insensitive), or None."""
        wanted = code.strip().upper()
        return next((h for h in self.hazards if h.code == wanted), None)


class _HazardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    code: Annotated[str, StringConstraints(pattern=r"^S[0-9]{1,2}$")]
    name: Annotated[str, StringConstraints(pattern=r"\S")]
    description: Annotated[str, StringConstraints(pattern=r"\S")]
    note: Annotated[str, StringConstraints(pattern=r"\S")] | None = None


class _TaxonomyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: int | None = None
    categories: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")], _HazardSpec],
        Field(min_length=1),
    ]


def _where(location: Location) -> tuple[str, str]:
    match location:
        case ("categories",):
            return "'categories'", "a non-empty mapping of key -> {code, name, description}"
        case ("categories", key, "[key]"):
            return f"category name {key!r}", "lower_snake_case"
        case ("categories", key):
            return f"category {key!r}", "a mapping with code, name and description"
        case ("categories", key, "code"):
            return f"category {key!r}: 'code'", "S followed by a number (S1 ... S14)"
        case ("categories", key, "note"):
            return f"category {key!r}: 'note'", "a non-empty string, or no note"
        case ("categories", key, field):
            return f"category {key!r}: {field!r}", "a non-empty string"
    return "the file", "a mapping with 'categories' (and optionally 'version')"


def load_taxonomy(path: Path = DEFAULT_TAXONOMY_FILE) -> Taxonomy:
    """Read and validate a taxonomy file (cached per path and modification time).

    Raises:
        ValueError: The file is missing, not YAML, breaks the schema or repeats a code;
            the message starts with "safety taxonomy <path>:".

    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ValueError(f"safety taxonomy {path}: cannot read it ({exc})") from exc
    return _load(path, mtime)


@lru_cache(maxsize=8)
def _load(path: Path, mtime: int) -> Taxonomy:
    del mtime  # part of the cache key only
    try:
        spec = _TaxonomyFile.model_validate(parse_yaml(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"safety taxonomy {path}: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(
            f"safety taxonomy {path}: {describe_validation_error(exc, _where)}"
        ) from None
    hazards = tuple(
        Hazard(
            key,
            c.code,
            " ".join(c.name.split()),
            " ".join(c.description.split()),
            " ".join(c.note.split()) if c.note else None,
        )
        for key, c in spec.categories.items()
    )
    codes = [h.code for h in hazards]
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        raise ValueError(f"safety taxonomy {path}: code(s) used twice: {', '.join(repeated)}")
    return Taxonomy(hazards)


@dataclass(frozen=True)
class Policy:
    """Which hazard categories each safety level refuses.

    Args:
        refuse: Level -> category keys refused at that level (``safety.refuse``).
        taxonomy: The categories the keys must come from.

    Raises:
        ValueError: A level is unknown, or a key is not a category of the taxonomy.

    """

    refuse: Mapping[str, frozenset[str]]
    taxonomy: Taxonomy

    @classmethod
    def build(cls, refuse: Mapping[str, Sequence[str]], taxonomy: Taxonomy) -> Policy:
        """Validate a level -> categories mapping against the taxonomy."""
        unknown_levels = sorted(set(refuse) - set(LEVELS))
        if unknown_levels:
            raise ValueError(f"safety.refuse: unknown level(s) {', '.join(unknown_levels)}")
        for level, keys in refuse.items():
            unknown = [k for k in keys if k not in taxonomy]
            if unknown:
                raise ValueError(
                    f"safety.refuse.{level}: unknown categor(y/ies) {', '.join(unknown)}; "
                    f"known: {', '.join(taxonomy.keys)}"
                )
        return cls({lvl: frozenset(refuse.get(lvl, ())) for lvl in LEVELS}, taxonomy)

    def refuses(self, category: str | None, level: str) -> bool:
        """Tell whether ``level`` refuses messages of ``category`` (None: never)."""
        return category is not None and category in self.refuse.get(level, frozenset())

    def refused_anywhere(self) -> frozenset[str]:
        """Categories some level refuses (what the checks need to look for at all)."""
        return frozenset().union(*self.refuse.values())
