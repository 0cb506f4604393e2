"""Corpora: YAML (or JSONL) files of conversations with expectations on the last reply.

A corpus is a file in ``evals/corpora/``; each case is one or more user turns, optional
settings/context overrides and documents, and expectations on the reply to the last
turn. :func:`load_corpus` validates a file into a :class:`Corpus` (errors name the file,
line, case and field).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from graph.context import Context
from graph.settings import REPO_ROOT
from tools.text import shorten as text_shorten
from tools.text import validation_error_line

EVALS_DIR = REPO_ROOT / "evals"
CORPORA_DIR = EVALS_DIR / "corpora"
CORPUS_SUFFIXES = (".yaml", ".yml", ".jsonl")

KINDS = (
    "concept",
    "blocked",
    "contains",
    "not_contains",
    "regex",
    "json",
    "json_schema",
    "refusal",
    "sources_include",
    "max_prompt_tokens",
    "max_latency_ms",
    "similar_to",
)
DEFAULT_MIN_SIMILARITY = 0.6


class EvalError(Exception):
    """A user-facing problem with a corpus, a run file or the run itself (no traceback)."""


class EvalModelError(EvalError):
    """The chat model cannot be loaded, so no case can run."""


class CorpusError(EvalError):
    """A corpus cannot be used; the message names the file, and the case and field if known."""

    def __init__(
        self,
        path: Path | str,
        message: str,
        *,
        case: str | None = None,
        line: int | None = None,
    ) -> None:
        where = str(path) + (f":{line}" if line else "")
        if case is not None:
            where += f": case {case!r}"
        super().__init__(f"{where}: {message}")
        self.path, self.case, self.line = Path(path), case, line


# --- corpus model --------------------------------------------------------------------


class _Strict(BaseModel):
    # A typo in a corpus must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid")


StrList = str | list[str]


class Expectation(_Strict):
    """One check on the last turn: exactly one kind, plus an optional weight.

    Written in a corpus as a one-kind mapping, e.g. ``{contains: gravity, weight: 2}``.
    """

    concept: str | None = None
    blocked: StrictBool | None = None
    contains: StrList | None = None
    not_contains: StrList | None = None
    regex: str | None = None
    json_value: Any = Field(None, alias="json")
    json_schema: dict[str, Any] | None = None
    refusal: StrictBool | None = None
    sources_include: StrList | None = None
    max_prompt_tokens: int | None = Field(None, ge=0)
    max_latency_ms: float | None = Field(None, gt=0)
    similar_to: str | None = None
    min_similarity: float | None = Field(None, ge=-1.0, le=1.0)
    weight: float = Field(1.0, gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                f"an expectation is a mapping such as {{contains: word}}, not {data!r}"
            )
        allowed = {*KINDS, "weight", "min_similarity"}
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ValueError(
                f"unknown expectation field(s) {', '.join(unknown)}; kinds are: {', '.join(KINDS)}"
            )
        kinds = [k for k in KINDS if k in data]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise ValueError(f"an expectation needs exactly one kind (found: {found})")
        if "min_similarity" in data and kinds[0] != "similar_to":
            raise ValueError("min_similarity goes only with similar_to")
        return data

    @model_validator(mode="after")
    def _check_value(self) -> Expectation:
        kind, value = self.kind, self.expected
        if kind in ("blocked", "refusal", "regex", "similar_to", "max_prompt_tokens") and (
            value is None
        ):
            raise ValueError(f"{kind} needs a value")
        if kind in ("contains", "not_contains", "sources_include"):
            items = _as_list(value)
            if not items or not all(items):
                raise ValueError(f"{kind} needs a non-empty string or list of strings")
        if kind == "max_latency_ms" and value is None:
            raise ValueError("max_latency_ms needs a value")
        if kind == "regex":
            try:
                re.compile(str(value))
            except re.error as exc:
                raise ValueError(f"regex {value!r} does not compile: {exc}") from None
        if kind == "json_schema":
            if value is None:
                raise ValueError("json_schema needs a schema")
            import jsonschema

            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from None
        return self

    @property
    def kind(self) -> str:
        """Which kind of check this is."""
        for name in KINDS:
            attr = "json_value" if name == "json" else name
            if attr in self.model_fields_set:
                return name
        raise AssertionError("validated expectations always have a kind")

    @property
    def expected(self) -> Any:
        """The expected value as written in the corpus."""
        kind = self.kind
        return getattr(self, "json_value" if kind == "json" else kind)


class Defaults(_Strict):
    """Values merged under every case of a corpus."""

    context: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class Session(_Strict):
    """One thread of a case: the turns one user sends on it, in order."""

    turns: list[str] = Field(min_length=1)
    user: str = Field(
        "user",
        min_length=1,
        description="Who sends them; sessions with the same user share long-term memory.",
    )

    @field_validator("turns")
    @classmethod
    def _turns_not_empty(cls, turns: list[str]) -> list[str]:
        if any(not t.strip() for t in turns):
            raise ValueError("a turn is empty (the graph rejects empty messages)")
        return turns


class Case(_Strict):
    """One conversation, or several threads (``sessions``), and expectations on the end.

    The expectations apply to the reply to the last turn of the last thread.
    """

    id: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    turns: list[str] = Field(
        default_factory=list,
        description="User turns on one fresh thread; with sessions, all of them in order.",
    )
    sessions: list[Session] = Field(
        default_factory=list,
        description="Several threads in order, each fresh, each of a named user (the "
        "long-term memory corpus: recall across threads, isolation between users).",
    )
    context: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    documents: list[str] = Field(default_factory=list)
    known_failure: str | None = None
    expect: list[Expectation] = Field(min_length=1)

    @field_validator("turns")
    @classmethod
    def _turns_not_empty(cls, turns: list[str]) -> list[str]:
        if any(not t.strip() for t in turns):
            raise ValueError("a turn is empty (the graph rejects empty messages)")
        return turns

    @model_validator(mode="after")
    def _scripted_reply_pins_the_fake_model(self) -> Case:
        # A scripted reply is what such a case tests (the output filter on a known text);
        # on another backend it would be ignored and the case would judge whatever that
        # model says, so the case must say it runs on the fake model, whatever --model is.
        model = self.settings.get("model") or {}
        if "fake_reply" in model and model.get("backend") != "fake":
            raise ValueError(
                "settings.model.fake_reply only takes effect on the fake backend: add "
                "backend: fake to the case's model settings (it then runs on the fake "
                "model whatever --model says)"
            )
        return self

    @model_validator(mode="after")
    def _turns_or_sessions(self) -> Case:
        if self.sessions and self.turns:
            raise ValueError("give turns or sessions, not both")
        if not self.sessions and not self.turns:
            raise ValueError("a case needs turns (or sessions)")
        if self.sessions:
            self.turns = [t for session in self.sessions for t in session.turns]
        return self

    @property
    def threads(self) -> list[Session]:
        """The case's threads in order (one, of the default user, when it has ``turns``)."""
        return self.sessions or [Session(turns=self.turns)]


class CorpusFile(_Strict):
    """The top level of a YAML corpus."""

    corpus: str | None = None
    description: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    cases: list[dict[str, Any]] = Field(min_length=1)


@dataclass
class Corpus:
    """A loaded corpus: its cases with the defaults already merged in."""

    name: str
    path: Path
    description: str
    cases: list[Case]

    def __len__(self) -> int:
        return len(self.cases)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``; nested mappings merge, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters between grapheme clusters, with an ellipsis."""
    return text_shorten(text, limit)


def _yaml_line(error: yaml.YAMLError) -> int | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def _read_raw_cases(path: Path) -> tuple[CorpusFile, list[int | None]]:
    """Parse the file into the top-level model and the line of each case (when known)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(path, f"cannot read the file: {exc}") from None
    if path.suffix == ".jsonl":
        cases, lines = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(path, f"invalid JSON: {exc.msg}", line=number) from None
            cases.append(case)
            lines.append(number)
        raw: Any = {"cases": cases}
        case_lines: list[int | None] = list(lines)
    else:
        try:
            node = yaml.compose(text)
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise CorpusError(path, f"invalid YAML: {problem}", line=_yaml_line(exc)) from None
        case_lines = _case_lines(node)
    if not isinstance(raw, dict):
        raise CorpusError(path, "a corpus is a mapping with corpus, description, defaults, cases")
    try:
        top = CorpusFile.model_validate(raw)
    except ValidationError as exc:
        raise CorpusError(path, validation_error_line(exc)) from None
    return top, case_lines


def _case_lines(node: yaml.Node | None) -> list[int | None]:
    # Line numbers of the items of `cases`, so a bad case can be found quickly.
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "cases" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def load_corpus(path: str | Path) -> Corpus:
    """Read and validate one corpus file.

    Args:
        path: A ``.yaml``/``.yml`` file (see the module docs) or a ``.jsonl`` file with one
            case per line.

    Returns:
        The corpus, each case with the defaults merged in (tags, context, settings).

    Raises:
        CorpusError: The file cannot be read or a case is invalid; the message names the
            file, the case id (or index) and the field.
    """
    path = Path(path)
    top, lines = _read_raw_cases(path)
    defaults = top.defaults
    cases: list[Case] = []
    seen: set[str] = set()
    for index, raw in enumerate(top.cases):
        line = lines[index] if index < len(lines) else None
        label = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else f"#{index + 1}"
        try:
            case = Case.model_validate(raw)
        except ValidationError as exc:
            raise CorpusError(path, validation_error_line(exc), case=label, line=line) from None
        if case.id in seen:
            raise CorpusError(path, "duplicate case id", case=case.id, line=line)
        seen.add(case.id)
        context = deep_merge(defaults.context, case.context)
        try:
            Context.model_validate(context)
        except ValidationError as exc:
            raise CorpusError(
                path, "context." + validation_error_line(exc), case=case.id, line=line
            ) from None
        for doc in case.documents:
            if not (path.parent / doc).is_file():
                raise CorpusError(
                    path,
                    f"documents: no such file {doc} (relative to the corpus file)",
                    case=case.id,
                    line=line,
                )
        tags = list(dict.fromkeys([*defaults.tags, *case.tags]))
        cases.append(
            case.model_copy(
                update={
                    "tags": tags,
                    "context": context,
                    "settings": deep_merge(defaults.settings, case.settings),
                }
            )
        )
    return Corpus(top.corpus or path.stem, path, top.description, cases)


def corpus_files(evals_dir: Path = CORPORA_DIR) -> list[Path]:
    """Every corpus file in the evals directory, by name."""
    if not evals_dir.is_dir():
        return []
    return sorted(p for p in evals_dir.iterdir() if p.is_file() and p.suffix in CORPUS_SUFFIXES)


def resolve_corpus(name_or_path: str, evals_dir: Path = CORPORA_DIR) -> Path:
    """A corpus file from a name (``routing`` → ``evals/corpora/routing.yaml``) or a path.

    A bare file name (``routing.yaml``) is a path when such a file is here, else a file of
    the corpora folder; a name with a folder in it is only ever a path.

    Raises:
        EvalError: There is no such corpus (the message lists the available ones), or the
            path is a directory.
    """
    given = Path(name_or_path).expanduser()
    directory = EvalError(
        f"{name_or_path} is a directory, not a corpus file: name its files, or run every "
        f"corpus in it with --evals-dir {name_or_path}"
    )
    has_folder = os.sep in name_or_path or (os.altsep is not None and os.altsep in name_or_path)
    known = ", ".join(p.stem for p in corpus_files(evals_dir)) or "none"
    if has_folder:  # a path: only ever a path
        if given.is_file():
            return given
        raise directory if given.is_dir() else EvalError(f"no such corpus file: {name_or_path}")
    if given.suffix in CORPUS_SUFFIXES:
        # A file name (``routing.yaml``): here first, then the corpora folder under that
        # name, then under its stem with another suffix (``routing.yml``).
        if given.is_file():
            return given
        if given.is_dir():
            raise directory
        for candidate in (
            evals_dir / name_or_path,
            *(evals_dir / f"{given.stem}{suffix}" for suffix in CORPUS_SUFFIXES),
        ):
            if candidate.is_file():
                return candidate
        raise EvalError(
            f"no such corpus file: {name_or_path} (not here, nor in {evals_dir}: {known})"
        )
    for suffix in CORPUS_SUFFIXES:
        candidate = evals_dir / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    if given.is_dir():  # a bare folder name: the corpus names came first
        raise directory
    raise EvalError(f"unknown corpus {name_or_path!r} (in {evals_dir}: {known})")


def load_corpora(names: Sequence[str] = (), evals_dir: Path = CORPORA_DIR) -> list[Corpus]:
    """Load the named corpora, or all of those in ``evals_dir`` when none is named.

    Raises:
        EvalError: A corpus is unknown or invalid, or two share a name.
    """
    paths = [resolve_corpus(n, evals_dir) for n in names] if names else corpus_files(evals_dir)
    if not paths:
        raise EvalError(f"no corpora in {evals_dir}")
    corpora = [load_corpus(p) for p in dict.fromkeys(paths)]
    names_seen: dict[str, Path] = {}
    for corpus in corpora:
        if corpus.name in names_seen:
            raise EvalError(
                f"two corpora are named {corpus.name!r}: {names_seen[corpus.name]} and "
                f"{corpus.path}"
            )
        names_seen[corpus.name] = corpus.path
    return corpora
