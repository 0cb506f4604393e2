"""Running corpora through the real graph: one fresh thread per case, a run record at the end.

:func:`run_evals` runs the cases through :func:`graph.build_graph` and returns a
:class:`~evals.records.RunRecord`, which :func:`~evals.records.save_run` writes as JSON.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from evals.corpus import Case, Corpus, CorpusError, EvalError, EvalModelError, deep_merge
from evals.expectations import Outcome, Similarity, embedding_similarity, evaluate, score_case
from evals.records import CaseResult, RunRecord, SourceRef, pass_rate
from graph import build_graph
from graph.context import Context
from graph.messages import BLOCKED_KEY
from graph.settings import REPO_ROOT, Settings, SettingsError, load_settings
from tools.documents.ingest import ingest
from tools.documents.store import DocumentStore
from tools.memory.store import index_config
from tools.models import ModelLoadError

# --- running --------------------------------------------------------------------------


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_evals`: carries the record of the cases that finished.

    A ``KeyboardInterrupt``, so a caller that does not look for it is still interrupted.
    """

    def __init__(self, record: RunRecord) -> None:
        super().__init__(f"interrupted after {len(record.cases)} of {record.planned} cases")
        self.record = record


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
    if settings.model.backend == "openai":
        return f"openai:{settings.model.name or '(first served)'}@{settings.model.base_url}"
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


def memory_store(settings: Settings) -> BaseStore | None:
    """The long-term store a run's graph gets: in the process, with the real index."""
    return InMemoryStore(index=index_config()) if settings.long_term.enabled else None


@dataclass
class _Runner:
    """Shared state of a run: compiled graphs per settings, the document lock, the saver."""

    workdir: Path
    similarity: Similarity
    model: Any = None
    make_store: Callable[[Settings], BaseStore | None] = memory_store
    _graphs: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ingest_lock: threading.Lock = field(default_factory=threading.Lock)

    def graph(self, settings: Settings) -> Any:
        key = settings.model_dump_json()
        with self._lock:
            if key not in self._graphs:
                # Each case has its own thread ids and user ids, so one saver and one
                # store per graph are enough: no case sees another's threads or memories.
                self._graphs[key] = build_graph(
                    settings,
                    checkpointer=InMemorySaver(),
                    store=self.make_store(settings),
                    model=self.model,
                )
            return self._graphs[key]

    def ingest(self, job: _Job) -> None:
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
            summary=outcome.summary,
            threads=len(case.threads),
            expectations=results,
            passed=passed,
            score=score,
        )

    def _converse(self, job: _Job) -> Outcome:
        if job.case.documents:
            self.ingest(job)
        graph = self.graph(job.settings)
        # Users are named per case ("user", "bob"); their ids are new for every run.
        run = uuid.uuid4().hex
        state: dict[str, Any] = {}
        latency = 0.0
        for session in job.case.threads:
            config = {"configurable": {"thread_id": f"eval-{uuid.uuid4().hex}"}}
            context = job.context.model_copy(
                update={"user_id": job.context.user_id or f"eval-{run}-{session.user}"}
            )
            for turn in session.turns:
                started = time.perf_counter()
                state = graph.invoke({"messages": [("user", turn)]}, config, context=context)
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
            summary=str(state.get("summary") or ""),
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


def run_settings(
    settings: Settings, model: str | None, jobs: int | None = None, chat_model: Any = None
) -> Settings:
    """The settings a run uses (``--model`` applied), checked before anything runs.

    Raises:
        EvalError: The model choice or settings are invalid, or ``jobs`` is above 1 for a
            real model (see :func:`run_evals`).
    """
    try:
        settings = load_settings(**deep_merge(settings.model_dump(), model_settings(model)))
    except SettingsError as exc:
        raise EvalError(str(exc)) from None
    if jobs is not None and jobs > 1 and settings.model.backend != "fake" and chat_model is None:
        # Refused rather than ignored: a real model runs one case at a time (one model,
        # one llama.cpp context), and a run planned around -j 4 would take 4 times longer.
        raise EvalError(
            f"--jobs {jobs} needs the fake model: the {settings.model.backend} backend runs "
            "one case at a time (drop -j, or use --model fake)"
        )
    return settings


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
    make_store: Callable[[Settings], BaseStore | None] = memory_store,
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
        make_store: The long-term store of each graph (tests pass one with cheap
            embeddings); by default in the process, with the all-MiniLM index.
        on_case: Called after each case with its result, the number done and the total.

    Returns:
        The run record (not yet saved; see :func:`save_run`).

    Raises:
        EvalError: Nothing to run, invalid overrides, ``jobs`` above 1 for a real model,
            or the model cannot be loaded.
        RunInterrupted: Ctrl-C; its ``record`` holds the cases that finished.
    """
    settings = run_settings(settings, model, jobs, chat_model)
    parallel = settings.model.backend == "fake" or chat_model is not None
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="assistant-eval-") as tmp:
        planned = plan_run(corpora, settings, Path(tmp), tags)
        if not planned:
            raise EvalError(f"no case has any of the tags {', '.join(tags)}")
        workers = max(1, jobs or os.cpu_count() or 1) if parallel else 1
        runner = _Runner(Path(tmp), similarity, chat_model, make_store)
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

        def record(interrupted: bool = False) -> RunRecord:
            with lock:
                cases = [r for r in results if r is not None]
            return _record(
                corpora,
                settings,
                model=model,
                tags=tags,
                started=started,
                cases=cases,
                planned=len(planned) if interrupted else None,
            )

        try:
            if workers == 1:
                for index in range(len(planned)):
                    one(index)
            else:
                pool = ThreadPoolExecutor(max_workers=workers)
                try:
                    futures = [pool.submit(one, index) for index in range(len(planned))]
                    wait(futures, return_when=FIRST_EXCEPTION)
                    for future in futures:
                        future.result()
                finally:
                    # On Ctrl-C (or a model error) cases not yet started are dropped; the
                    # running ones finish, so the temporary store is not pulled from
                    # under them.
                    pool.shutdown(wait=True, cancel_futures=True)
        except ModelLoadError as exc:
            raise EvalModelError(f"model error: {exc}") from None
        except KeyboardInterrupt:
            raise RunInterrupted(record(interrupted=True)) from None
    return record()


def _record(
    corpora: Sequence[Corpus],
    settings: Settings,
    *,
    model: str | None,
    tags: Sequence[str],
    started: datetime,
    cases: list[CaseResult],
    planned: int | None,
) -> RunRecord:
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
        interrupted=planned is not None,
        planned=planned,
    )


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
