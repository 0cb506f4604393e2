"""One turn at a time per thread, across threads and processes.

A turn reads the thread's latest checkpoint, runs for seconds, and writes new ones; two
turns on one thread at once would both start from the same checkpoint, and one of them
would be lost. So a turn holds the thread's lock from before the read to after the last
write. A second turn waits for it up to ``memory.busy_timeout`` seconds (the LangGraph
server's "enqueue" strategy) and then fails with :class:`ThreadBusyError`; a wait of 0
refuses at once (its "reject").

The lock must go away with a holder that dies:

- Redis (threads in Redis, possibly used from several machines): a key with a TTL
  (``memory.lock_ttl``), renewed by a background thread while the turn runs, so a killed
  process blocks the thread for at most the TTL (redis-py's ``Lock``);
- SQLite (one machine): an OS file lock per thread in ``<data_dir>/memory/locks``
  (``filelock``, ``flock(2)``), which the kernel releases when the process dies;
- process memory: a lock in the process (nobody else can see its threads).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis import Redis

logger = logging.getLogger(__name__)


class ThreadBusyError(RuntimeError):
    """Another turn is running on this thread (and did not finish within the wait)."""

    def __init__(self, thread_id: str, waited: float) -> None:
        self.thread_id = thread_id
        self.waited = waited
        how = f"after waiting {waited:.0f} s" if waited > 0 else "(not waiting)"
        super().__init__(
            f"thread {thread_id} is busy: another turn is running on it {how}; try again "
            "when it is done (memory.busy_timeout sets the wait)"
        )


class ThreadLocks(Protocol):
    """Hands out the per-thread lock of one backend."""

    def hold(self, thread_id: str, wait: float) -> AbstractContextManager[None]:
        """Hold the thread's lock for a ``with`` block, waiting up to ``wait`` seconds.

        Raises:
            ThreadBusyError: The thread stayed busy for ``wait`` seconds.
        """
        ...


def _file_name(thread_id: str) -> str:
    # Thread ids are arbitrary text; the name must be a safe, fixed-length file name.
    return hashlib.sha256(thread_id.encode("utf-8")).hexdigest()[:32] + ".lock"


class FileThreadLocks:
    """OS file locks (``flock``) in a directory: one machine, released when a process dies."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextmanager
    def hold(self, thread_id: str, wait: float) -> Iterator[None]:
        """See :meth:`ThreadLocks.hold`."""
        from filelock import FileLock, Timeout

        self.directory.mkdir(parents=True, exist_ok=True)
        # thread_local=False: the lock belongs to this object, not to the Python thread
        # (a turn may start and end in different worker threads of an asyncio server).
        lock = FileLock(self.directory / _file_name(thread_id), thread_local=False)
        started = time.monotonic()
        try:
            lock.acquire(timeout=wait, poll_interval=0.05)
        except Timeout:
            raise ThreadBusyError(thread_id, time.monotonic() - started) from None
        try:
            yield
        finally:
            lock.release()


class LocalThreadLocks:
    """Locks inside one process, for threads that only this process can see."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, thread_id: str, wait: float) -> Iterator[None]:
        """See :meth:`ThreadLocks.hold`."""
        with self._guard:
            lock = self._locks.setdefault(thread_id, threading.Lock())
        started = time.monotonic()
        if not lock.acquire(timeout=wait if wait > 0 else 0):
            raise ThreadBusyError(thread_id, time.monotonic() - started)
        try:
            yield
        finally:
            lock.release()


class RedisThreadLocks:
    """Redis keys with a TTL, renewed while the turn runs.

    Good across machines; the lock of a holder that died expires after the TTL.
    """

    PREFIX = "local-assistant:thread-lock:"

    def __init__(self, client: Redis, ttl: float, fallback: ThreadLocks) -> None:
        self.client = client
        self.ttl = ttl
        self.fallback = fallback
        self._down = False

    @contextmanager
    def hold(self, thread_id: str, wait: float) -> Iterator[None]:
        """See :meth:`ThreadLocks.hold`.

        When Redis stops answering, the threads move to the local fallback store, and so
        do their locks (the fallback's file locks).
        """
        from redis.exceptions import LockError, RedisError

        name = self.PREFIX + hashlib.sha256(thread_id.encode("utf-8")).hexdigest()[:32]
        # thread_local=False: the renewing thread must see the lock's token.
        lock = self.client.lock(
            name, timeout=self.ttl, sleep=0.05, blocking=wait > 0, thread_local=False
        )
        started = time.monotonic()
        try:
            acquired = not self._down and lock.acquire(blocking_timeout=wait if wait > 0 else None)
        except RedisError as exc:
            logger.warning("Redis cannot lock threads (%s); locking them locally", exc)
            self._down = True
        if self._down:
            with self.fallback.hold(thread_id, wait):
                yield
            return
        if not acquired:
            raise ThreadBusyError(thread_id, time.monotonic() - started)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(lock, stop, thread_id), daemon=True, name="thread-lock"
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                lock.release()
            except LockError:
                logger.warning("the lock of thread %s had expired before the turn ended", thread_id)
            except RedisError as exc:  # it expires by itself
                logger.warning("cannot release the lock of thread %s: %s", thread_id, exc)

    def _renew(self, lock: object, stop: threading.Event, thread_id: str) -> None:
        from redis.exceptions import LockError, RedisError

        while not stop.wait(self.ttl / 3):
            try:
                lock.reacquire()  # type: ignore[attr-defined]
            except (LockError, RedisError) as exc:
                logger.warning("cannot renew the lock of thread %s: %s", thread_id, exc)
                return


class NoThreadLocks:
    """No locking: nothing is kept between turns (``memory.backend = none``)."""

    @contextmanager
    def hold(self, thread_id: str, wait: float) -> Iterator[None]:
        """Hold nothing."""
        yield
