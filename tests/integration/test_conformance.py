"""The persistent checkpointers against ``langgraph-checkpoint-conformance`` (0.0.2).

How the suite works (read from its source; it is a library, not a pytest plugin):

- ``checkpointer_test(name=..., skip_capabilities=...)`` turns an async generator that
  yields a saver into a ``RegisteredCheckpointer``; ``await validate(registered)`` runs one
  capability suite after another, each on a fresh saver from the generator (the code
  after ``yield`` is the cleanup), and returns a ``CapabilityReport``. It never raises
  for a failed check: every spec test's exception is caught and counted, so a test that
  only awaited ``validate`` would always pass. :func:`assert_conformant` reads the report.
- Base capabilities (required): put, put_writes, get_tuple, list, delete_thread. Extended
  (optional): delete_for_runs, copy_thread, prune. A capability is "detected", and so
  tested, when the saver's class overrides the *async* method (aput, aput_writes, ...).
- It is async only. A sync-only saver is not tested but misjudged (upstream
  langchain-ai/langgraph#8722, open; the fix proposed in #8732 reports such savers as
  SKIPPED): SqliteSaver, whose async methods raise NotImplementedError, scores NONE with
  43 false failures, and RedisSaver, which overrides no async method, scores FULL
  without a single check having run. So the sync savers go through
  :class:`SyncSaverAsAsync`, which hands the suite's async calls to their sync methods.
- ``report.passed_all_base()`` is False whenever a base capability was skipped, and
  ``report.passed_all()`` is True when nothing was detected, so neither is used alone:
  :func:`assert_conformant` requires every base capability (and each backend's listed
  extended ones) to have run and passed, and every other capability that ran to pass.

Known upstream failures are listed per spec test, not per capability, in
``REDIS_KNOWN_FAILURES`` with their reasons: excluding ``list`` whole would stop checking
its eleven other tests, which the Redis savers pass. They still run, they are reported
(a ``KnownConformanceGap`` warning names them on every run), and each must still fail:
one that starts passing fails the test, so the list cannot go stale. Any other failure
fails the test. SQLite passes everything it implements, with nothing excluded.

Each suite gets a fresh saver, but the data stays in one store per test (one SQLite file,
one Redis database), as with a real deployment reopening its store; thread ids in the
spec are UUIDs, so the suites do not see each other's threads.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES, Capability
from langgraph.checkpoint.conformance.report import CapabilityReport, ProgressCallbacks
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.redis import RedisSaver
from langgraph.checkpoint.redis.aio import AsyncRedisSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from graph.settings import Settings, load_settings
from tools.memory import FallbackSaver, aopen_checkpointer, open_checkpointer

pytestmark = pytest.mark.integration

BASE = frozenset(cap.value for cap in BASE_CAPABILITIES)


# --- running the suite on sync savers ---------------------------------------------------


class SyncSaverAsAsync(BaseCheckpointSaver[Any]):
    """Test-only: the async API the suite calls, carried out by a saver's sync methods.

    Only the base methods are defined here; :func:`via_sync` adds the extended ones the
    wrapped saver implements, so the suite detects exactly what the sync saver has.
    """

    def __init__(self, inner: BaseCheckpointSaver[Any]) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self.inner.get_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.inner.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self.inner.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.inner.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.inner.delete_thread(thread_id)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.inner.get_next_version(current, channel)


async def _adelete_for_runs(self: SyncSaverAsAsync, run_ids: Sequence[str]) -> None:
    self.inner.delete_for_runs(run_ids)


async def _acopy_thread(self: SyncSaverAsAsync, source: str, target: str) -> None:
    self.inner.copy_thread(source, target)


async def _aprune(
    self: SyncSaverAsAsync, thread_ids: Sequence[str], *, strategy: str = "keep_latest"
) -> None:
    self.inner.prune(thread_ids, strategy=strategy)


_SYNC_EXTENDED = {
    "delete_for_runs": ("adelete_for_runs", _adelete_for_runs),
    "copy_thread": ("acopy_thread", _acopy_thread),
    "prune": ("aprune", _aprune),
}


def via_sync(inner: BaseCheckpointSaver[Any]) -> SyncSaverAsAsync:
    """``inner`` seen by the suite through its sync methods only."""
    methods = {
        async_name: impl
        for sync_name, (async_name, impl) in _SYNC_EXTENDED.items()
        if getattr(type(inner), sync_name) is not getattr(BaseCheckpointSaver, sync_name)
    }
    cls = type(f"{type(inner).__name__}ViaSync", (SyncSaverAsAsync,), methods)
    return cls(inner)


# --- reading the report ---------------------------------------------------------------

# capability -> {spec test -> why it fails}
KnownFailures = Mapping[str, Mapping[str, str]]


class KnownConformanceGap(UserWarning):
    """A saver fails spec tests that are known to fail upstream (tolerated, not hidden)."""


def assert_conformant(
    report: CapabilityReport,
    *,
    extended: frozenset[str] = frozenset(),
    known_failures: KnownFailures | None = None,
) -> None:
    """Fail unless the report shows a conforming saver.

    Args:
        report: What ``validate`` returned.
        extended: Extended capabilities the saver is known to implement; they must have
            been run too, so that losing one (in a wrapper, say) is noticed.
        known_failures: Spec tests known to fail upstream, with the reason. They must
            still fail: one that passes is reported as stale.
    """
    __tracebackhide__ = True
    known_failures = known_failures or {}
    problems: list[str] = []
    tolerated: list[str] = []
    for cap in Capability:
        name = cap.value
        result = report.results.get(name)
        known = known_failures.get(name, {})
        if result is None or not result.detected or result.passed is None:
            if name in BASE or name in extended:
                problems.append(f"{name}: not run (the saver does not implement it)")
            elif known:
                problems.append(f"{name}: not run, yet known failures are listed for it")
            continue
        # The suite records each failure as "<spec test name>: <error>".
        failed = {line.split(":", 1)[0]: line for line in result.failures}
        for test, line in failed.items():
            if test in known:
                tolerated.append(f"{name}.{test}")
            else:
                problems.append(f"{name}: {line}")
        for test in known:
            if test not in failed:
                problems.append(f"{name}: {test} passes now; drop it from the known failures")
    report.print_report()
    if tolerated:
        warnings.warn(
            KnownConformanceGap(
                f"{report.checkpointer_name} fails {len(tolerated)} spec test(s) known to fail "
                f"upstream (reasons in test_conformance.py): {', '.join(tolerated)}"
            ),
            stacklevel=2,
        )
    if problems:
        raise AssertionError(
            f"{report.checkpointer_name} does not conform "
            f"(suite level {report.conformance_level()}):\n  " + "\n  ".join(problems)
        )


# --- the backends ---------------------------------------------------------------------


@dataclass
class Stores:
    """Where one test's savers keep their data."""

    tmp_path: Path
    redis_url: str | None = None

    @property
    def sqlite(self) -> Path:
        return self.tmp_path / "checkpoints.sqlite"

    @property
    def url(self) -> str:
        assert self.redis_url is not None, "this backend needs needs_redis=True"
        return self.redis_url

    def settings(self) -> Settings:
        """The app's settings for Redis with the SQLite fallback, on these stores."""
        return load_settings(
            memory={
                "backend": "redis",
                "redis_url": self.url if self.redis_url else "redis://127.0.0.1:1",
                "fallback": "sqlite",
                "sqlite_path": str(self.sqlite),
            }
        )


SaverFactory = Callable[[Stores], AsyncIterator[BaseCheckpointSaver[Any]]]


@dataclass(frozen=True)
class Backend:
    """One saver as the suite sees it."""

    id: str
    factory: SaverFactory
    needs_redis: bool = False
    extended: frozenset[str] = frozenset()
    known_failures: KnownFailures = field(default_factory=dict)


# (a) SQLite, on a file in tmp_path.


async def sqlite_sync(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    with SqliteSaver.from_conn_string(str(stores.sqlite)) as saver:
        saver.setup()
        yield via_sync(saver)


async def sqlite_async(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    async with AsyncSqliteSaver.from_conn_string(str(stores.sqlite)) as saver:
        await saver.setup()
        yield saver


# (b) Redis with RediSearch and RedisJSON (the redis_url fixture).


async def redis_sync(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    with RedisSaver.from_conn_string(stores.url) as saver:
        saver.setup()  # from_conn_string does not create the search indexes
        yield via_sync(saver)


async def redis_async(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    async with AsyncRedisSaver.from_conn_string(stores.url) as saver:  # sets up on entry
        yield saver


# What langgraph-checkpoint-redis 0.5.2 (the newest release) gets wrong, sync and async
# alike; each checked against its source and its repository (redis-developer/langgraph-redis).
_ROOT_NAMESPACE = (
    "list() skips the namespace filter when checkpoint_ns is '' (a falsy check), so the "
    "root namespace lists every namespace of the thread; fixed in the repository "
    "(tests/test_list_root_namespace.py), not in a release yet"
)
_BEFORE = (
    "list(before=...) parses the checkpoint id as a ULID; LangGraph's ids are UUIDv6, so "
    "the filter is silently dropped and the whole history comes back (langgraph-redis "
    "issue #136; fixed in the repository, tests/test_list_before_uuid6.py, not in a "
    "release yet)"
)
REDIS_LIST_KNOWN_FAILURES = {
    "test_list_by_namespace": _ROOT_NAMESPACE,
    "test_list_multiple_namespaces": _ROOT_NAMESPACE,
    "test_list_before": _BEFORE,
    "test_list_limit_plus_before": _BEFORE,
    "test_list_metadata_custom_keys": (
        "list(filter=...) only knows the indexed keys source, step, thread_id and run_id; "
        "any other metadata key raises ValueError('Unsupported filter key') by design"
    ),
}
REDIS_KNOWN_FAILURES: KnownFailures = {
    "list": REDIS_LIST_KNOWN_FAILURES,
    "prune": {
        "test_prune_keep_latest_across_namespaces": (
            "prune itself keeps the right checkpoints; the check then lists the root "
            "namespace and meets the list() namespace bug above"
        ),
        "test_prune_empty_list_noop": (
            "prune([]) raises ValueError('thread_ids must be a non-empty sequence') on "
            "purpose, where the contract says it is a no-op"
        ),
    },
}

OFFICIAL = [
    Backend("sqlite-sync", sqlite_sync),
    Backend("sqlite-async", sqlite_async),
    Backend(
        "redis-sync",
        redis_sync,
        needs_redis=True,
        extended=frozenset({"prune"}),
        known_failures=REDIS_KNOWN_FAILURES,
    ),
    Backend(
        "redis-async",
        redis_async,
        needs_redis=True,
        extended=frozenset({"prune"}),
        known_failures=REDIS_KNOWN_FAILURES,
    ),
]


# (c) Our wrapper, tools.memory.FallbackSaver: Redis in front, SQLite behind.


async def fallback_sync(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    with open_checkpointer(stores.settings()) as saver:
        assert isinstance(saver, FallbackSaver), f"expected the wrapper, got {saver!r}"
        yield via_sync(saver)


async def fallback_async(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    async with aopen_checkpointer(stores.settings()) as saver:
        assert isinstance(saver, FallbackSaver), f"expected the wrapper, got {saver!r}"
        yield saver


class DeadRedisSaver(BaseCheckpointSaver[str]):
    """A primary whose server has gone: every call fails as redis-py does then."""

    def _gone(self, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError

        raise RedisConnectionError("Connection refused.")

    get_tuple = put = put_writes = delete_thread = _gone

    def list(self, *args: Any, **kwargs: Any) -> Iterator[CheckpointTuple]:
        yield from self._gone()

    async def _agone(self, *args: Any, **kwargs: Any) -> Any:
        self._gone()

    aget_tuple = aput = aput_writes = adelete_thread = _agone

    async def alist(self, *args: Any, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        self._gone()
        yield  # pragma: no cover


async def failed_over_sync(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    with SqliteSaver.from_conn_string(str(stores.sqlite)) as fallback:
        fallback.setup()
        yield via_sync(FallbackSaver(DeadRedisSaver(), fallback, settings=stores.settings()))


async def failed_over_async(stores: Stores) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    async with AsyncSqliteSaver.from_conn_string(str(stores.sqlite)) as fallback:
        await fallback.setup()
        yield FallbackSaver(DeadRedisSaver(), fallback, settings=stores.settings())


# FallbackSaver implements no extended capability; while Redis answers it lists
# through the Redis saver, and inherits its list() failures.
WRAPPER = [
    Backend(
        "fallback-sync",
        fallback_sync,
        needs_redis=True,
        known_failures={"list": REDIS_LIST_KNOWN_FAILURES},
    ),
    Backend(
        "fallback-async",
        fallback_async,
        needs_redis=True,
        known_failures={"list": REDIS_LIST_KNOWN_FAILURES},
    ),
    # Redis gone: the first call of each suite fails over; the rest runs on SQLite.
    Backend("fallback-failed-over-sync", failed_over_sync),
    Backend("fallback-failed-over-async", failed_over_async),
]


# --- the tests ------------------------------------------------------------------------


def run_conformance(
    backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> CapabilityReport:
    stores = Stores(tmp_path)
    if backend.needs_redis:
        stores.redis_url = request.getfixturevalue("redis_url")

    registered = checkpointer_test(name=backend.id)(lambda: backend.factory(stores))
    started = time.perf_counter()
    report = asyncio.run(validate(registered, progress=ProgressCallbacks.verbose()))
    print(f"{backend.id}: conformance suite ran in {time.perf_counter() - started:.2f} s")
    return report


@pytest.mark.parametrize("backend", OFFICIAL, ids=lambda b: b.id)
def test_official_saver_conforms(
    backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = run_conformance(backend, request, tmp_path)
    assert_conformant(report, extended=backend.extended, known_failures=backend.known_failures)


@pytest.mark.parametrize("backend", WRAPPER, ids=lambda b: b.id)
def test_fallback_saver_conforms(
    backend: Backend, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report = run_conformance(backend, request, tmp_path)
    assert_conformant(report, extended=backend.extended, known_failures=backend.known_failures)


# --- the check itself must be able to fail --------------------------------------------


class ListIgnoresLimit(InMemorySaver):
    """A saver with a real bug: ``alist`` returns everything whatever the limit."""

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:
        kwargs["limit"] = None
        async for item in super().alist(config, **kwargs):
            yield item


class SyncOnlySaver(InMemorySaver):
    """What RedisSaver looks like to the suite: no async method of its own."""

    aget_tuple = BaseCheckpointSaver.aget_tuple
    alist = BaseCheckpointSaver.alist
    aput = BaseCheckpointSaver.aput
    aput_writes = BaseCheckpointSaver.aput_writes
    adelete_thread = BaseCheckpointSaver.adelete_thread


@pytest.mark.parametrize(
    ("saver_class", "expected"),
    [
        (ListIgnoresLimit, "list: test_list_limit: "),
        # The suite itself calls this one FULL: nothing was detected, so nothing ran.
        (SyncOnlySaver, r"put: not run"),
    ],
    ids=["failing-capability", "nothing-run"],
)
def test_check_fails_on_a_bad_saver(saver_class: type[InMemorySaver], expected: str) -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        yield saver_class()

    report = asyncio.run(validate(checkpointer_test(name=saver_class.__name__)(factory)))
    with pytest.raises(AssertionError, match=expected):
        assert_conformant(report)


def test_known_failure_that_passes_fails() -> None:
    async def factory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        yield InMemorySaver()

    report = asyncio.run(validate(checkpointer_test(name="InMemorySaver")(factory)))
    assert_conformant(report)
    with pytest.raises(AssertionError, match="test_list_all passes now"):
        assert_conformant(report, known_failures={"list": {"test_list_all": "made up"}})
