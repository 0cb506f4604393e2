"""Evaluation harness: corpora of conversations with expectations, run through the real graph.

A corpus is a YAML file (or JSONL, one case per line) in ``evals/``; each case is one or
more user turns, optional settings/context overrides and documents, and expectations on
the reply to the last turn. :func:`run_evals` runs the cases through :func:`graph.build_graph`
(a fresh thread per case) and returns a :class:`RunRecord`, which :func:`save_run` writes
as JSON into the runs directory. The record's JSON Schema is ``evals/run.schema.json``
(:func:`run_schema`).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

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
from graph.settings import REPO_ROOT, Settings, SettingsError, load_settings

EVALS_DIR = REPO_ROOT / "evals"
SCHEMA_FILE = EVALS_DIR / "run.schema.json"
CORPUS_SUFFIXES = (".yaml", ".yml", ".jsonl")
RECORD_VERSION = 1

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


class Case(_Strict):
    """One conversation and the expectations on its last reply."""

    id: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    turns: list[str] = Field(min_length=1)
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


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


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
        raise CorpusError(path, _describe(exc)) from None
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
            raise CorpusError(path, _describe(exc), case=label, line=line) from None
        if case.id in seen:
            raise CorpusError(path, "duplicate case id", case=case.id, line=line)
        seen.add(case.id)
        context = deep_merge(defaults.context, case.context)
        try:
            Context.model_validate(context)
        except ValidationError as exc:
            raise CorpusError(path, "context." + _describe(exc), case=case.id, line=line) from None
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


def corpus_files(evals_dir: Path = EVALS_DIR) -> list[Path]:
    """Every corpus file in the evals directory, by name."""
    if not evals_dir.is_dir():
        return []
    return sorted(p for p in evals_dir.iterdir() if p.is_file() and p.suffix in CORPUS_SUFFIXES)


def resolve_corpus(name_or_path: str, evals_dir: Path = EVALS_DIR) -> Path:
    """A corpus file from a name (``routing`` → ``evals/routing.yaml``) or a path.

    Raises:
        EvalError: There is no such corpus; the message lists the available ones.
    """
    given = Path(name_or_path).expanduser()
    if given.suffix in CORPUS_SUFFIXES or os.sep in name_or_path:
        if given.is_file():
            return given
        raise EvalError(f"no such corpus file: {name_or_path}")
    for suffix in CORPUS_SUFFIXES:
        candidate = evals_dir / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    known = ", ".join(p.stem for p in corpus_files(evals_dir)) or "none"
    raise EvalError(f"unknown corpus {name_or_path!r} (in {evals_dir}: {known})")


def load_corpora(names: Sequence[str] = (), evals_dir: Path = EVALS_DIR) -> list[Corpus]:
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


# --- the run record ------------------------------------------------------------------


class ExpectationResult(BaseModel):
    """How one expectation went."""

    kind: str
    expected: Any
    passed: bool
    weight: float
    detail: str = Field(description="What was seen, in words (why it failed, when it did).")


class SourceRef(BaseModel):
    """A retrieved passage, without its text."""

    name: str | None = None
    source: str | None = None
    section: str | None = None
    page: int | None = None
    score: float | None = None


class CaseResult(BaseModel):
    """One case as it ran."""

    corpus: str
    id: str
    tags: list[str]
    turns: list[str]
    reply: str | None = Field(description="The reply to the last turn (None if the case crashed).")
    concept: str | None = None
    blocked: bool | None = None
    refusal: bool | None = None
    sources: list[SourceRef] = Field(default_factory=list)
    prompt_tokens: int | None = None
    latency_ms: float | None = Field(None, description="Wall time of the last turn.")
    expectations: list[ExpectationResult]
    passed: bool
    score: float = Field(ge=0.0, le=1.0, description="Weighted share of passed expectations.")
    known_failure: str | None = None
    error: str | None = Field(None, description="Why the case crashed; a crash is a failure.")


class PassRate(BaseModel):
    """Pass rate of a group of cases; known failures are listed but not counted."""

    passed: int
    total: int = Field(description="Cases counted (known failures excluded).")
    rate: float | None = Field(description="passed / total; None when total is 0.")
    score: float | None = Field(description="Mean weighted score of the counted cases.")
    known_failures: int = 0


class RunRecord(BaseModel):
    """A whole evaluation run, as written to ``<runs_dir>/<run_id>.json``."""

    version: int = RECORD_VERSION
    run_id: str
    started: datetime
    finished: datetime
    model: str = Field(description="fake, default (the default GGUF), or a GGUF path.")
    backend: str
    git_commit: str | None
    corpora: list[str]
    corpus_files: dict[str, str]
    tags: list[str] = Field(description="The --tag filter (empty: every case).")
    settings: dict[str, Any]
    overall: PassRate
    per_corpus: dict[str, PassRate]
    per_tag: dict[str, PassRate]
    cases: list[CaseResult]

    def case(self, corpus: str, case_id: str) -> CaseResult | None:
        """The result of one case, or None."""
        return next((c for c in self.cases if c.corpus == corpus and c.id == case_id), None)


def run_schema() -> dict[str, Any]:
    """The JSON Schema of a run record (what ``evals/run.schema.json`` holds)."""
    schema = RunRecord.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def pass_rate(cases: Iterable[CaseResult]) -> PassRate:
    """The pass rate and mean score of cases, known failures left out of the counts."""
    cases = list(cases)
    counted = [c for c in cases if not c.known_failure]
    passed = sum(c.passed for c in counted)
    return PassRate(
        passed=passed,
        total=len(counted),
        rate=passed / len(counted) if counted else None,
        score=sum(c.score for c in counted) / len(counted) if counted else None,
        known_failures=len(cases) - len(counted),
    )


# --- evaluating a reply ----------------------------------------------------------------


@dataclass
class Outcome:
    """What the last turn of a case produced, the input of the expectations."""

    reply: str
    concept: str | None
    blocked: bool
    refusal: bool
    sources: list[dict[str, Any]]
    prompt_tokens: int
    latency_ms: float


Similarity = Callable[[str, str], float]


def embedding_similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts with the local embedding model (all-MiniLM-L6-v2)."""
    from tools.vectorstore import get_embeddings

    va, vb = get_embeddings().embed_documents([a, b])
    norm = math.sqrt(sum(x * x for x in va)) * math.sqrt(sum(x * x for x in vb))
    return sum(x * y for x, y in zip(va, vb, strict=True)) / norm if norm else 0.0


_FENCED_JSON = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_json_reply(reply: str) -> Any:
    """The JSON value of a reply: the whole text, else its first fenced code block.

    Raises:
        ValueError: Neither is valid JSON.
    """
    try:
        return json.loads(reply)
    except json.JSONDecodeError:
        pass
    for block in _FENCED_JSON.findall(reply):
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    raise ValueError("the reply is not JSON (nor does it hold a ```json block)")


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def evaluate(
    expectation: Expectation, outcome: Outcome, similarity: Similarity = embedding_similarity
) -> ExpectationResult:
    """Check one expectation against what the last turn produced.

    Args:
        expectation: The check.
        outcome: The last turn's reply, concept, safety verdict, sources, tokens, latency.
        similarity: Text similarity for ``similar_to`` (the local embeddings by default).

    Returns:
        The result with a ``detail`` saying what was seen.
    """
    kind, expected = expectation.kind, expectation.expected
    passed, detail = _check(kind, expected, expectation, outcome, similarity)
    return ExpectationResult(
        kind=kind, expected=expected, passed=passed, weight=expectation.weight, detail=detail
    )


def _check(
    kind: str, expected: Any, exp: Expectation, out: Outcome, similarity: Similarity
) -> tuple[bool, str]:
    reply = out.reply
    lowered = reply.casefold()
    if kind == "concept":
        return out.concept == expected, f"routed to {out.concept or 'no concept'}"
    if kind == "blocked":
        return out.blocked == expected, "blocked" if out.blocked else "allowed"
    if kind == "refusal":
        return out.refusal == expected, "a refusal" if out.refusal else "not a refusal"
    if kind == "contains":
        missing = [w for w in _as_list(expected) if w.casefold() not in lowered]
        return not missing, f"missing: {', '.join(map(repr, missing))}" if missing else "all found"
    if kind == "not_contains":
        found = [w for w in _as_list(expected) if w.casefold() in lowered]
        return not found, f"found: {', '.join(map(repr, found))}" if found else "none found"
    if kind == "regex":
        match = re.search(str(expected), reply)
        return match is not None, f"matched {match.group(0)!r}" if match else "no match"
    if kind in ("json", "json_schema"):
        try:
            value = parse_json_reply(reply)
        except ValueError as exc:
            return False, str(exc)
        if kind == "json":
            same = value == expected
            return same, "equal" if same else f"got {_short(json.dumps(value))}"
        import jsonschema

        errors = list(jsonschema.validators.validator_for(expected)(expected).iter_errors(value))
        return not errors, "valid" if not errors else _short(errors[0].message, 160)
    if kind == "sources_include":
        names = {str(s.get("name") or "") for s in out.sources} | {
            Path(str(s.get("source") or "")).name for s in out.sources
        }
        paths = [str(s.get("source") or "") for s in out.sources]
        missing = [
            w
            for w in _as_list(expected)
            if w not in names and not any(p.endswith(w) for p in paths)
        ]
        seen = ", ".join(sorted(n for n in names if n)) or "no sources"
        return not missing, f"sources: {seen}"
    if kind == "max_prompt_tokens":
        return out.prompt_tokens <= expected, f"{out.prompt_tokens} prompt tokens"
    if kind == "max_latency_ms":
        return out.latency_ms <= expected, f"{out.latency_ms:.0f} ms"
    if kind == "similar_to":
        threshold = DEFAULT_MIN_SIMILARITY if exp.min_similarity is None else exp.min_similarity
        score = similarity(reply, str(expected))
        return score >= threshold, f"similarity {score:.3f} (needs {threshold:.2f})"
    raise AssertionError(f"unhandled expectation kind {kind}")


def score_case(results: Sequence[ExpectationResult]) -> tuple[bool, float]:
    """Whether a case passed (every expectation did) and its weighted score."""
    total = sum(r.weight for r in results)
    got = sum(r.weight for r in results if r.passed)
    return all(r.passed for r in results) and bool(results), (got / total if total else 0.0)


# --- running --------------------------------------------------------------------------


def model_settings(model: str | None) -> dict[str, Any]:
    """Settings overrides for a ``--model`` choice: fake, default, or a GGUF path.

    Raises:
        EvalError: The path is not a file.
    """
    if model is None:
        return {}
    if model == "fake":
        return {"model": {"backend": "fake"}}
    if model == "default":
        return {"model": {"backend": "llamacpp", "gguf_path": None}}
    path = Path(model).expanduser()
    if not path.is_file():
        raise EvalError(f"--model: no such GGUF file: {model} (or use fake / default)")
    return {"model": {"backend": "llamacpp", "gguf_path": str(path.resolve())}}


def model_label(settings: Settings) -> str:
    """How a run's model is named in the record."""
    if settings.model.backend == "fake":
        return "fake"
    if settings.model.backend == "huggingface":
        return f"huggingface:{settings.model.hf_model_dir}"
    return str(settings.model.gguf_path) if settings.model.gguf_path else "default"


def git_commit() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def new_run_id(now: datetime) -> str:
    """A sortable run id: ``<UTC timestamp>-<6 hex digits>``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass
class _Job:
    corpus: Corpus
    case: Case
    settings: Settings
    context: Context
    collection: str | None


@dataclass
class _Runner:
    """Shared state of a run: compiled graphs per settings, the document lock, the saver."""

    workdir: Path
    similarity: Similarity
    model: Any = None
    _graphs: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ingest_lock: threading.Lock = field(default_factory=threading.Lock)

    def graph(self, settings: Settings) -> Any:
        from langgraph.checkpoint.memory import InMemorySaver

        from graph import build_graph

        key = settings.model_dump_json()
        with self._lock:
            if key not in self._graphs:
                # Each case has its own thread id, so one saver per graph is enough.
                self._graphs[key] = build_graph(
                    settings, checkpointer=InMemorySaver(), model=self.model
                )
            return self._graphs[key]

    def ingest(self, job: _Job) -> None:
        from tools.ingest import ingest
        from tools.vectorstore import DocumentStore

        paths = [job.corpus.path.parent / d for d in job.case.documents]
        # One embedded Chroma is shared by the run; writes go one at a time.
        with self._ingest_lock:
            report = ingest(DocumentStore(job.settings, job.collection), paths)
        problems = [*report.skipped, *report.failed]
        if problems:
            raise EvalError(
                "documents not ingested: " + "; ".join(f"{p.path}: {p.reason}" for p in problems)
            )

    def run(self, job: _Job) -> CaseResult:
        case = job.case
        base: dict[str, Any] = {
            "corpus": job.corpus.name,
            "id": case.id,
            "tags": case.tags,
            "turns": case.turns,
            "known_failure": case.known_failure,
        }
        try:
            outcome = self._converse(job)
        except Exception as exc:  # a crashing case is a failed case, not a crashed run
            from tools.llm import ModelLoadError

            if isinstance(exc, ModelLoadError):
                raise  # every case would fail the same way: stop the run
            return CaseResult(
                **base,
                reply=None,
                expectations=[],
                passed=False,
                score=0.0,
                error=f"{type(exc).__name__}: {exc}",
            )
        results = [evaluate(e, outcome, self.similarity) for e in case.expect]
        passed, score = score_case(results)
        return CaseResult(
            **base,
            reply=outcome.reply,
            concept=outcome.concept,
            blocked=outcome.blocked,
            refusal=outcome.refusal,
            sources=[SourceRef.model_validate(_source_ref(s)) for s in outcome.sources],
            prompt_tokens=outcome.prompt_tokens,
            latency_ms=outcome.latency_ms,
            expectations=results,
            passed=passed,
            score=score,
        )

    def _converse(self, job: _Job) -> Outcome:
        from tools.prompting import BLOCKED_KEY

        if job.case.documents:
            self.ingest(job)
        graph = self.graph(job.settings)
        config = {"configurable": {"thread_id": f"eval-{uuid.uuid4().hex}"}}
        state: dict[str, Any] = {}
        latency = 0.0
        for turn in job.case.turns:
            started = time.perf_counter()
            state = graph.invoke({"messages": [("user", turn)]}, config, context=job.context)
            latency = (time.perf_counter() - started) * 1000
        last = state["messages"][-1]
        safety = state.get("safety") or {}
        blocked = not safety.get("allowed", True)
        return Outcome(
            reply=last.text,
            concept=state.get("concept"),
            blocked=blocked,
            refusal=bool(last.additional_kwargs.get(BLOCKED_KEY))
            or _is_refusal_text(last.text, job.settings),
            sources=list(state.get("sources") or []),
            prompt_tokens=int(state.get("prompt_tokens") or 0),
            latency_ms=round(latency, 1),
        )


def _source_ref(source: dict[str, Any]) -> dict[str, Any]:
    return {k: source.get(k) for k in SourceRef.model_fields}


def _is_refusal_text(text: str, settings: Settings) -> bool:
    # The configured refusal with its {reason}/{level} fields as wildcards: a model reply
    # that happens to equal it counts too (the safety block is caught by BLOCKED_KEY).
    parts = re.split(r"\\\{(?:reason|level)\\\}", re.escape(settings.safety.refusal_template))
    return re.fullmatch(".*?".join(parts), text.strip(), re.DOTALL) is not None


def _collection_name(index: int, case: Case) -> str:
    return f"eval-{index:04d}-{re.sub(r'[^A-Za-z0-9]', '', case.id)[:40] or 'case'}"


def plan_run(
    corpora: Sequence[Corpus],
    settings: Settings,
    workdir: Path,
    tags: Sequence[str] = (),
) -> list[_Job]:
    """Resolve every selected case's settings and context before anything runs.

    Cases are isolated from the user's document store: those without documents see an
    empty store, those with documents get a collection of their own in ``workdir``.

    Raises:
        CorpusError: A case's settings overrides are invalid (names the file, case, key).
    """
    base = settings.model_dump(mode="python")
    isolated = {"chroma": {"url": None, "path": workdir / "empty"}}
    jobs: list[_Job] = []
    for corpus in corpora:
        for case in corpus.cases:
            if tags and not set(tags) & set(case.tags):
                continue
            collection = _collection_name(len(jobs), case) if case.documents else None
            chroma = {"path": workdir / "documents"} if collection else {}
            overrides = deep_merge(deep_merge(isolated, {"chroma": chroma}), case.settings)
            try:
                case_settings = load_settings(**deep_merge(base, overrides))
            except SettingsError as exc:
                raise CorpusError(corpus.path, str(exc).replace("\n", " "), case=case.id) from None
            context = dict(case.context)
            if collection:
                context.setdefault("collection", collection)
            jobs.append(
                _Job(corpus, case, case_settings, Context.model_validate(context), collection)
            )
    return jobs


def run_evals(
    corpora: Sequence[Corpus],
    settings: Settings,
    *,
    model: str | None = None,
    tags: Sequence[str] = (),
    jobs: int | None = None,
    chat_model: Any = None,
    similarity: Similarity = embedding_similarity,
    on_case: Callable[[CaseResult, int, int], None] | None = None,
) -> RunRecord:
    """Run the cases of the corpora through the real graph and score them.

    Args:
        corpora: Loaded corpora.
        settings: The run's settings; each case's overrides are merged over them.
        model: ``fake``, ``default``, a GGUF path, or None for the configured backend.
        tags: Run only cases with at least one of these tags (empty: all).
        jobs: Cases at a time; the fake backend runs in a thread pool (default: CPUs),
            a real model one case at a time (one model instance, one llama.cpp context).
        chat_model: A chat model to use instead of the configured one (tests).
        similarity: Text similarity for ``similar_to`` expectations.
        on_case: Called after each case with its result, the number done and the total.

    Returns:
        The run record (not yet saved; see :func:`save_run`).

    Raises:
        EvalError: Nothing to run, invalid overrides, or the model cannot be loaded.
    """
    from tools.llm import ModelLoadError

    try:
        settings = load_settings(**deep_merge(settings.model_dump(), model_settings(model)))
    except SettingsError as exc:
        raise EvalError(str(exc)) from None
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="assistant-eval-") as tmp:
        planned = plan_run(corpora, settings, Path(tmp), tags)
        if not planned:
            raise EvalError(f"no case has any of the tags {', '.join(tags)}")
        parallel = settings.model.backend == "fake" or chat_model is not None
        workers = max(1, jobs or os.cpu_count() or 1) if parallel else 1
        runner = _Runner(Path(tmp), similarity, chat_model)
        results: list[CaseResult | None] = [None] * len(planned)
        done = 0
        lock = threading.Lock()

        def one(index: int) -> None:
            nonlocal done
            result = runner.run(planned[index])
            with lock:
                results[index] = result
                done += 1
                if on_case:
                    on_case(result, done, len(planned))

        try:
            if workers == 1:
                for index in range(len(planned)):
                    one(index)
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(one, range(len(planned))))
        except ModelLoadError as exc:
            raise EvalModelError(f"model error: {exc}") from None
    cases = [r for r in results if r is not None]
    return RunRecord(
        run_id=new_run_id(started),
        started=started,
        finished=datetime.now(UTC),
        model=model or model_label(settings),
        backend=settings.model.backend,
        git_commit=git_commit(),
        corpora=[c.name for c in corpora],
        corpus_files={c.name: _display_path(c.path) for c in corpora},
        tags=list(tags),
        settings=settings.model_dump(mode="json"),
        overall=pass_rate(cases),
        per_corpus={c.name: pass_rate(r for r in cases if r.corpus == c.name) for c in corpora},
        per_tag={
            tag: pass_rate(r for r in cases if tag in r.tags)
            for tag in sorted({t for r in cases for t in r.tags})
        },
        cases=cases,
    )


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --- run files -------------------------------------------------------------------------


def default_runs_dir(settings: Settings) -> Path:
    """Where run records go unless told otherwise: ``<data_dir>/evals/runs``."""
    return settings.data_dir / "evals" / "runs"


def save_run(record: RunRecord, runs_dir: Path) -> Path:
    """Write the record as ``<runs_dir>/<run_id>.json`` and return the path.

    Raises:
        EvalError: The directory or file cannot be written.
    """
    path = runs_dir / f"{record.run_id}.json"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise EvalError(f"cannot write the run record {path}: {exc}") from None
    return path


def load_run(path: str | Path) -> RunRecord:
    """Read a run record.

    Raises:
        EvalError: The file is missing, not JSON, or not a run record.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalError(f"no such run file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read the run file {path}: {exc}") from None
    try:
        return RunRecord.model_validate_json(text)
    except ValidationError as exc:
        raise EvalError(f"{path} is not a run record: {_short(_describe(exc), 300)}") from None


def list_runs(runs_dir: Path) -> list[Path]:
    """Run files in the directory, oldest first (run ids sort by time)."""
    if not runs_dir.is_dir():
        return []
    return sorted(runs_dir.glob("*.json"))


def find_run(given: str | None, runs_dir: Path) -> Path:
    """A run file from a path, a run id (or a unique part of one), or None for the latest.

    Raises:
        EvalError: No such run, or the part matches several.
    """
    runs = list_runs(runs_dir)
    if given is None or given == "latest":
        if not runs:
            raise EvalError(f"no runs in {runs_dir}: run `assistant eval` first")
        return runs[-1]
    path = Path(given).expanduser()
    if path.is_file():
        return path
    matches = [r for r in runs if r.stem == given] or [r for r in runs if given in r.stem]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(m.stem for m in matches[:5])
        raise EvalError(f"{given!r} matches several runs: {listed}")
    raise EvalError(f"no such run file or run id: {given} (runs are in {runs_dir})")


def previous_run(run: Path, runs_dir: Path) -> Path | None:
    """The run before ``run`` in the runs directory, or None."""
    runs = [r for r in list_runs(runs_dir) if r.resolve() != run.resolve()]
    older = [r for r in runs if r.stem < run.stem]
    return older[-1] if older else None


Status = Literal["passed", "failed", "known_failure"]


def status(case: CaseResult) -> Status:
    """A case's status for diffs: known failures are their own kind."""
    if case.known_failure and not case.passed:
        return "known_failure"
    return "passed" if case.passed else "failed"
