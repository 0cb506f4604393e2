"""A Redis saver that moves to a local one when Redis stops answering, and back after a restart.

While Redis is down the turns go to the fallback (SQLite). The next process that finds
Redis up reads each thread through: checkpoints that only the fallback has are copied
back into Redis (the newest checkpoint is the thread's head; a thread that went on in
both stores is logged as a conflict, and the other branch stays in its history), then the
fallback's copy is dropped. So nothing written during an outage is lost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from graph.settings import Settings
from tools.memory.backends import Saver, is_unreachable, redact, sqlite_path

logger = logging.getLogger(__name__)

# --- failing over in the middle of a conversation ---------------------------------------

_Latest = tuple[RunnableConfig, Checkpoint, CheckpointMetadata, ChannelVersions]


class FallbackSaver(BaseCheckpointSaver[str]):
    """A Redis saver that moves to a local saver, for good, when Redis stops answering.

    It remembers the newest checkpoint of the threads this process has read or written
    (a bounded number), and writes them into the fallback store when it switches, so a
    conversation goes on where it was. Use the sync or the async methods, matching the
    two savers it wraps.
    """

    def __init__(
        self, primary: Saver, fallback: Saver, *, settings: Settings, remember: int = 1024
    ) -> None:
        super().__init__(serde=primary.serde)
        self.primary = primary
        self.fallback = fallback
        self.failed_over = False
        self._url = redact(settings.memory.redis_address)
        self._where = (
            f"the SQLite store {sqlite_path(settings)}"
            if settings.memory.fallback == "sqlite"
            else "process memory"
        )
        self._remember = remember
        self._latest: OrderedDict[tuple[str, str], _Latest] = OrderedDict()
        self._lock = threading.Lock()  # guards _latest
        self._switch_lock = threading.Lock()
        self._aswitch_lock = asyncio.Lock()

    @property
    def active(self) -> Saver:
        """The saver in use now."""
        return self.fallback if self.failed_over else self.primary

    # Bookkeeping -----------------------------------------------------------------------

    def _note(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        meta: CheckpointMetadata,
        versions: ChannelVersions,
    ) -> None:
        conf = config["configurable"]
        key = (str(conf["thread_id"]), str(conf.get("checkpoint_ns", "")))
        with self._lock:
            self._latest[key] = (config, checkpoint, meta, versions)
            self._latest.move_to_end(key)
            while len(self._latest) > self._remember:
                self._latest.popitem(last=False)

    def _note_tuple(self, config: RunnableConfig, found: CheckpointTuple | None) -> None:
        # Only "the latest checkpoint of a thread" reads are worth carrying over.
        if found is not None and not config["configurable"].get("checkpoint_id"):
            parent = found.parent_config or {
                "configurable": {**found.config["configurable"], "checkpoint_id": None}
            }
            versions = found.checkpoint["channel_versions"]
            self._note(parent, found.checkpoint, found.metadata, versions)

    def _carried(self, exc: BaseException) -> list[_Latest]:
        """What to carry over, with the one warning of the switch."""
        with self._lock:
            carried = list(self._latest.values())
        logger.warning(
            "Redis at %s stopped answering (%s); continuing on %s with the %d thread(s) "
            "this process had open. New turns stay there until the assistant restarts.",
            self._url,
            exc,
            self._where,
            len(carried),
        )
        return carried

    # The flag flips only after the carry-over, and callers that fail meanwhile wait on
    # the switch lock: none of them may read a thread from the fallback before it is there.

    def _fail_over(self, exc: BaseException) -> None:
        if not is_unreachable(exc):
            raise exc
        with self._switch_lock:
            if self.failed_over:
                return
            for config, checkpoint, meta, versions in self._carried(exc):
                have = self.fallback.get_tuple(_latest_of(config))
                if have is None or have.checkpoint["id"] < checkpoint["id"]:
                    self.fallback.put(config, checkpoint, meta, versions)
            self.failed_over = True

    async def _afail_over(self, exc: BaseException) -> None:
        if not is_unreachable(exc):
            raise exc
        async with self._aswitch_lock:
            if self.failed_over:
                return
            for config, checkpoint, meta, versions in self._carried(exc):
                have = await self.fallback.aget_tuple(_latest_of(config))
                if have is None or have.checkpoint["id"] < checkpoint["id"]:
                    await self.fallback.aput(config, checkpoint, meta, versions)
            self.failed_over = True

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self.failed_over:
            try:
                return getattr(self.primary, name)(*args, **kwargs)
            except Exception as exc:
                self._fail_over(exc)
        return getattr(self.fallback, name)(*args, **kwargs)

    async def _acall(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not self.failed_over:
            try:
                return await getattr(self.primary, name)(*args, **kwargs)
            except Exception as exc:
                await self._afail_over(exc)
        return await getattr(self.fallback, name)(*args, **kwargs)

    # The saver interface -----------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch a checkpoint tuple (the latest of the thread unless an id is given)."""
        if not config["configurable"].get("checkpoint_id"):
            self._read_through(config)
        found: CheckpointTuple | None = self._call("get_tuple", config)
        self._note_tuple(config, found)
        return found

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        if not config["configurable"].get("checkpoint_id"):
            await self._aread_through(config)
        found: CheckpointTuple | None = await self._acall("aget_tuple", config)
        self._note_tuple(config, found)
        return found

    # Reading through to the fallback --------------------------------------------------

    def _read_through(self, config: RunnableConfig) -> None:
        """Copy back what the fallback holds of this thread and Redis lacks, then drop it."""
        if self.failed_over or config["configurable"].get("thread_id") is None:
            return
        latest = _latest_of(config)
        try:
            if self.fallback.get_tuple(latest) is None:
                return  # the usual case: one local query
            local = list(self.fallback.list(latest))
            head = self.primary.get_tuple(latest)
            missing = [t for t in local if self.primary.get_tuple(t.config) is None]
            for item in reversed(missing):  # oldest first, so parents exist before children
                self.primary.put(*_put_args(item))
                for task_id, channel, value in item.pending_writes or []:
                    self.primary.put_writes(item.config, [(channel, value)], task_id)
            self._report(latest, local, missing, head)
            self.fallback.delete_thread(latest["configurable"]["thread_id"])
        except Exception as exc:
            self._fail_over(exc)

    async def _aread_through(self, config: RunnableConfig) -> None:
        """Async :meth:`_read_through`."""
        if self.failed_over or config["configurable"].get("thread_id") is None:
            return
        latest = _latest_of(config)
        try:
            if await self.fallback.aget_tuple(latest) is None:
                return
            local = [t async for t in self.fallback.alist(latest)]
            head = await self.primary.aget_tuple(latest)
            missing = [t for t in local if await self.primary.aget_tuple(t.config) is None]
            for item in reversed(missing):
                await self.primary.aput(*_put_args(item))
                for task_id, channel, value in item.pending_writes or []:
                    await self.primary.aput_writes(item.config, [(channel, value)], task_id)
            self._report(latest, local, missing, head)
            await self.fallback.adelete_thread(latest["configurable"]["thread_id"])
        except Exception as exc:
            await self._afail_over(exc)

    def _report(
        self,
        latest: RunnableConfig,
        local: list[CheckpointTuple],
        missing: list[CheckpointTuple],
        head: CheckpointTuple | None,
    ) -> None:
        thread = latest["configurable"]["thread_id"]
        if not missing:
            logger.info("thread %s: the fallback's copy is already in Redis; dropped it", thread)
            return
        oldest = missing[-1]
        parent = (oldest.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        if head is not None and parent != head.checkpoint["id"]:
            newest = (
                "the fallback" if local[0].checkpoint["id"] > head.checkpoint["id"] else "Redis"
            )
            logger.warning(
                "thread %s went on both in Redis and in %s while Redis was down: the newest "
                "checkpoint (from %s) is its head now; the other branch stays in its history.",
                thread,
                self._where,
                newest,
            )
        logger.info(
            "thread %s: copied %d checkpoint(s) written to %s while Redis was down back to Redis",
            thread,
            len(missing),
            self._where,
        )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List checkpoints, newest first."""
        if config is not None and not config["configurable"].get("checkpoint_id"):
            self._read_through(config)
        if not self.failed_over:
            started = False
            try:
                for item in self.primary.list(config, filter=filter, before=before, limit=limit):
                    started = True
                    yield item
                return
            except Exception as exc:
                if started:  # half a listing from each store would be wrong; say so
                    raise
                self._fail_over(exc)
        yield from self.fallback.list(config, filter=filter, before=before, limit=limit)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        if config is not None and not config["configurable"].get("checkpoint_id"):
            await self._aread_through(config)
        if not self.failed_over:
            started = False
            try:
                async for item in self.primary.alist(
                    config, filter=filter, before=before, limit=limit
                ):
                    started = True
                    yield item
                return
            except Exception as exc:
                if started:
                    raise
                await self._afail_over(exc)
        async for item in self.fallback.alist(config, filter=filter, before=before, limit=limit):
            yield item

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint."""
        self._note(config, checkpoint, metadata, new_versions)
        saved: RunnableConfig = self._call("put", config, checkpoint, metadata, new_versions)
        return saved

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        self._note(config, checkpoint, metadata, new_versions)
        saved: RunnableConfig = await self._acall(
            "aput", config, checkpoint, metadata, new_versions
        )
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the pending writes of a task."""
        self._call("put_writes", config, writes, task_id, task_path)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        await self._acall("aput_writes", config, writes, task_id, task_path)

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread from both stores (the fallback may hold a copy)."""
        self._forget(thread_id)
        self._call("delete_thread", thread_id)
        if not self.failed_over:
            self.fallback.delete_thread(thread_id)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        self._forget(thread_id)
        await self._acall("adelete_thread", thread_id)
        if not self.failed_over:
            await self.fallback.adelete_thread(thread_id)

    def _forget(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._latest if k[0] == str(thread_id)]:
                del self._latest[key]

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Next channel version, in the format both wrapped savers share."""
        return self.active.get_next_version(current, channel)

    def with_allowlist(self, extra_allowlist: Any) -> FallbackSaver:
        """A clone whose wrapped savers use the derived msgpack allowlist."""
        clone = super().with_allowlist(extra_allowlist)
        assert isinstance(clone, FallbackSaver)
        if clone is not self:
            clone.primary = self.primary.with_allowlist(extra_allowlist)
            clone.fallback = self.fallback.with_allowlist(extra_allowlist)
        return clone


def _put_args(
    item: CheckpointTuple,
) -> tuple[RunnableConfig, Checkpoint, CheckpointMetadata, ChannelVersions]:
    # A checkpoint is put under its parent's config, with every channel version as new, so
    # the receiving saver stores all channel values (what the failover does too).
    conf = item.config["configurable"]
    parent = item.parent_config or {
        "configurable": {
            "thread_id": conf["thread_id"],
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
        }
    }
    return parent, item.checkpoint, item.metadata, item.checkpoint["channel_versions"]


def _latest_of(config: RunnableConfig) -> RunnableConfig:
    conf = config["configurable"]
    return {
        "configurable": {
            "thread_id": conf["thread_id"],
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
        }
    }
