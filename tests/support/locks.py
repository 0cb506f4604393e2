"""Thread locks a test can use to order two turns on one thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tools.memory.locks import LocalThreadLocks


class GateLocks:
    """Thread locks that let a test order two turns on one thread.

    The first ``hold`` takes the lock, says so (``first_holds``) and waits for ``go``
    before its turn runs: a turn that has its thread but has saved nothing yet. Each later
    ``hold`` says it is waiting (``later_waits``) before it waits for the lock.
    """

    def __init__(self) -> None:
        self.locks = LocalThreadLocks()
        self.first_holds = threading.Event()
        self.later_waits = threading.Event()
        self.go = threading.Event()
        self._calls = 0
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, thread_id: str, wait: float) -> Iterator[None]:
        with self._guard:
            self._calls += 1
            first = self._calls == 1
        if not first:
            self.later_waits.set()
        with self.locks.hold(thread_id, wait):
            if first:
                self.first_holds.set()
                assert self.go.wait(30), "the test never let the first turn go on"
            yield

    def race(self, first: Callable[[], object], second: Callable[[], object]) -> list[object]:
        """Run two turns on these locks in that order; each one's result or exception.

        ``second`` starts once ``first`` holds the thread (before it saved anything), and
        ``first`` goes on once ``second`` has passed its early checks and waits for the lock.
        """
        results: list[object] = [None, None]

        def run(at: int, turn: Callable[[], object]) -> None:
            try:
                results[at] = turn()
            except Exception as exc:
                results[at] = exc

        one = threading.Thread(target=run, args=(0, first))
        two = threading.Thread(target=run, args=(1, second))
        one.start()
        assert self.first_holds.wait(30)
        two.start()
        assert self.later_waits.wait(30)
        self.go.set()
        one.join(30)
        two.join(30)
        assert not one.is_alive() and not two.is_alive()
        return results
