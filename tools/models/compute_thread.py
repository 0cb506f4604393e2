"""One OS thread for all of a model's llama.cpp work, whichever thread asks for it.

llama.cpp's CPU backend (as llama-cpp-python's wheel builds it) runs each evaluation on
an OpenMP thread team, and an OpenMP team belongs to the thread that starts it. The
front ends call the model from many threads: the CLI from its main thread, the web page
and the API from a new worker thread per turn, the judge from whichever thread runs the
graph. Each new calling thread gets a new team, and two teams take turns on the same
cores. Measured on 2 cores with the default model, greedy, 8 tokens, time to the first
token of the same turn in one process (median of 6): the CLI's turn on the main thread
0.25 s, the page's turn in its worker thread 0.29-0.30 s; with every call on one
thread, 0.25 s for both.

So every call runs here: :meth:`ComputeThread.call` for a single result,
:meth:`ComputeThread.stream` for a generation, chunk by chunk. The callers keep their
locks and their meaning; only the thread that does the work changes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["ComputeThread"]

T = TypeVar("T")


class ComputeThread:
    """A single long-lived worker thread (started on first use) that runs callables in turn.

    Calls made from the worker itself run at once (a callable may call another), so
    nothing here can wait for itself.
    """

    def __init__(self, name: str = "llama") -> None:
        """A compute thread; ``name`` prefixes the OS thread's name (seen in py-spy, top)."""
        self._ident: int | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=name, initializer=self._started
        )

    def _started(self) -> None:
        self._ident = threading.get_ident()

    def _here(self) -> bool:
        return threading.get_ident() == self._ident

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work()`` on the compute thread and return its result.

        Raises:
            BaseException: Whatever ``work`` raised, re-raised in the caller's thread.
        """
        if self._here():
            return work()
        return self._executor.submit(work).result()

    def stream(self, make: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Iterate ``make()`` on the compute thread, yielding its items in the caller's.

        Items are made at most one ahead of the caller's reading. A caller that stops early
        (closes this generator) stops the iteration after the item being made, and
        waits for it: once this generator is closed, the compute thread is free and
        ``make()``'s iterator is closed (its ``finally`` and ``with`` blocks have run).

        Raises:
            BaseException: Whatever ``make()`` or its iteration raised, in the caller's
                thread.
        """
        if self._here():
            yield from make()
            return
        handoff: queue.SimpleQueue[tuple[bool, object]] = queue.SimpleQueue()
        # At most two items in flight, one handed over and one being made: the work runs
        # ahead of its reader by one item (a token decoded while the last is shown), no
        # more, so a reader that stops wastes one item's work at most.
        credits = threading.Semaphore(2)
        wanted = threading.Event()
        wanted.set()

        def produce() -> None:
            try:
                items = make()
                try:
                    while True:
                        credits.acquire()
                        if not wanted.is_set():
                            break
                        try:
                            item = next(items)
                        except StopIteration:
                            break
                        handoff.put((True, item))
                finally:
                    close = getattr(items, "close", None)
                    if close is not None:
                        close()
            except BaseException as exc:  # raised in the caller's thread
                handoff.put((False, exc))
                return
            handoff.put((False, None))

        done = self._executor.submit(produce)
        try:
            while True:
                more, value = handoff.get()
                if more:
                    credits.release()
                    yield value  # type: ignore[misc]
                elif value is None:
                    return
                else:
                    raise value  # type: ignore[misc]
        finally:
            wanted.clear()
            credits.release()  # a producer waiting for a credit sees it is not wanted
            done.result()  # the producer catches everything: this only waits for it
