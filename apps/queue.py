"""Many users on one model: a bounded, first-come-first-served queue for turns.

One llama.cpp model answers one turn at a time. Every front end that shares the model (the
HTTP API; the web UI could share it too) takes a place in one :class:`ModelQueue` before
its turn runs: the oldest waiting turn goes next, a full queue refuses at once with a
suggested wait (HTTP 503 + ``Retry-After``), and a caller that gives up (a client that
disconnected sets its stop event) leaves the queue without ever touching the model.

:class:`QueuedLocks` puts the queue inside a thread's lock, so :func:`apps.turns.stream_turn`
waits for the thread first (409 when it is busy), then for the model.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from apps.turns import GenerationStopped

if TYPE_CHECKING:
    from tools.memory import ThreadLocks

MAX_RETRY_AFTER = 30
"""Longest wait suggested to a refused caller, in seconds (the estimate is rough)."""

POLL_SECONDS = 0.05
"""How often a waiting turn looks at its stop event (a disconnect frees its place)."""


class QueueFullError(RuntimeError):
    """Every place in the queue is taken; ``retry_after`` is a suggested wait in seconds."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        self.waiting = waiting
        self.retry_after = retry_after
        super().__init__(
            f"the model is busy and {waiting} request(s) are waiting; retry in {retry_after} s"
        )


class ModelQueue:
    """One turn on the model at a time; the others wait in arrival order, at most ``size``.

    Args:
        size: Turns that may wait while one runs (one more is refused).
        clock: Seconds, monotonic (tests may pass their own).
    """

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self.size = size
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._running: object | None = None
        self._seconds: deque[float] = deque(maxlen=20)
        self.served = 0
        self.refused = 0
        self.cancelled = 0

    @property
    def waiting(self) -> int:
        """Turns waiting now (not counting the one running)."""
        with self._cond:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        """Whether a turn holds the model now."""
        with self._cond:
            return self._running is not None

    def retry_after(self) -> int:
        """Seconds a refused caller should wait: recent turns' median x turns ahead, 1 to 30.

        The median, not the mean: one slow turn (the first loads the models) would
        otherwise tell every client to stay away for minutes.
        """
        with self._cond:
            return self._retry_after()

    def _retry_after(self) -> int:
        typical = statistics.median(self._seconds) if self._seconds else 1.0
        return min(MAX_RETRY_AFTER, max(1, math.ceil(typical * (len(self._waiting) + 1))))

    @contextmanager
    def turn(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold the model for a ``with`` block, after the turns that came earlier.

        Args:
            stop: Set it (from another thread) to give up the place while waiting.

        Raises:
            QueueFullError: ``size`` turns are waiting already (nothing was queued).
            GenerationStopped: ``stop`` was set while waiting (the place is given up).
        """
        ticket = object()
        with self._cond:
            busy = self._running is not None or bool(self._waiting)
            if busy and len(self._waiting) >= self.size:
                self.refused += 1
                raise QueueFullError(len(self._waiting), self._retry_after())
            self._waiting.append(ticket)
            try:
                while self._running is not None or self._waiting[0] is not ticket:
                    if stop is not None and stop.is_set():
                        self.cancelled += 1
                        raise GenerationStopped()
                    self._cond.wait(POLL_SECONDS if stop is not None else None)
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()
                raise
            self._waiting.popleft()
            self._running = ticket
        started = self._clock()
        try:
            yield
        finally:
            with self._cond:
                self._seconds.append(self._clock() - started)
                self._running = None
                self.served += 1
                self._cond.notify_all()


class QueuedLocks:
    """Thread locks that also take a place in the model queue once the thread is held.

    Passed to :func:`apps.turns.stream_turn` instead of the memory's locks: a busy thread
    fails at once (or after ``wait``) without queueing, and a turn never holds the model
    while it waits for its thread.

    Args:
        locks: The memory's thread locks.
        queue: The model queue every front end shares.
        stop: The turn's stop event (a disconnect gives up the place in the queue).
    """

    def __init__(
        self, locks: ThreadLocks, queue: ModelQueue, stop: threading.Event | None = None
    ) -> None:
        self.locks = locks
        self.queue = queue
        self.stop = stop

    def hold(self, thread_id: str, wait: float) -> AbstractContextManager[None]:
        """Hold the thread's lock, then the model.

        Raises:
            ThreadBusyError: The thread stayed busy for ``wait`` seconds.
            QueueFullError: The queue is full.
            GenerationStopped: The stop event was set while waiting for the model.
        """
        return self._hold(thread_id, wait)

    @contextmanager
    def _hold(self, thread_id: str, wait: float) -> Iterator[None]:
        with self.locks.hold(thread_id, wait), self.queue.turn(self.stop):
            yield
