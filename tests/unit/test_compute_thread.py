"""One thread for a model's work (tools.models.compute_thread), whoever calls."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator

import pytest

from tools.models.compute_thread import ComputeThread


def from_threads(work: ComputeThread, callers: int) -> set[int]:
    """The threads ``work`` ran on, asked from ``callers`` threads of their own."""
    seen: set[int] = set()
    asked: set[int] = set()

    def ask() -> None:
        asked.add(threading.get_ident())
        seen.add(work.call(threading.get_ident))
        seen.update(work.stream(lambda: iter([threading.get_ident()])))

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ask()  # and from this one
    assert not seen & asked
    return seen


@pytest.mark.parametrize("callers", [1, 4])
def test_every_call_and_stream_runs_on_one_thread_that_is_no_callers(callers: int) -> None:
    assert len(from_threads(ComputeThread(), callers)) == 1


def test_two_compute_threads_are_two_threads() -> None:
    assert from_threads(ComputeThread(), 2) != from_threads(ComputeThread(), 2)


def test_a_call_returns_its_result_and_raises_its_error_in_the_caller() -> None:
    work = ComputeThread()
    assert work.call(lambda: 41 + 1) == 42
    with pytest.raises(ZeroDivisionError):
        work.call(lambda: 1 / 0)
    assert work.call(lambda: "still serving") == "still serving"


def test_work_that_asks_for_more_work_runs_it_at_once() -> None:
    work = ComputeThread()
    assert work.call(lambda: work.call(lambda: 7)) == 7
    assert work.call(lambda: list(work.stream(lambda: iter("ab")))) == ["a", "b"]


def test_a_stream_hands_over_each_item_as_it_is_made() -> None:
    work = ComputeThread()
    made: list[int] = []
    steps = [threading.Event() for _ in range(3)]

    def slow() -> Iterator[int]:
        for n, step in enumerate(steps):
            assert step.wait(10)
            made.append(n)
            yield n

    stream = work.stream(slow)
    steps[0].set()
    assert next(stream) == 0 and made == [0]  # before the next one is even allowed
    steps[1].set()
    steps[2].set()
    assert list(stream) == [1, 2]


def test_an_error_mid_stream_comes_after_the_items_before_it() -> None:
    def failing() -> Iterator[str]:
        yield "a"
        yield "b"
        raise ValueError("model failed")

    got: list[str] = []
    with pytest.raises(ValueError, match="model failed"):
        for item in ComputeThread().stream(failing):
            got.append(item)
    assert got == ["a", "b"]


def test_closing_a_stream_early_stops_the_work_and_waits_for_its_cleanup() -> None:
    work = ComputeThread()
    made: list[int] = []
    cleaned = threading.Event()
    lock = threading.Lock()

    def endless() -> Generator[int, None, None]:
        with lock:  # as the model holds its lock for a generation
            try:
                n = 0
                while True:
                    made.append(n)
                    yield n
                    n += 1
            finally:
                cleaned.set()

    stream = work.stream(endless)
    assert isinstance(stream, Generator)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert cleaned.is_set()  # done before close() returned
    assert len(made) <= 5  # at most two made ahead of what was read
    assert lock.acquire(timeout=0)  # the generation's lock is free
    lock.release()
    assert work.call(lambda: "free") == "free"


def test_a_stream_abandoned_by_an_exception_in_the_caller_stops_too() -> None:
    cleaned = threading.Event()

    def endless() -> Iterator[int]:
        try:
            while True:
                yield 1
        finally:
            cleaned.set()

    def consume() -> None:
        for _ in ComputeThread().stream(endless):
            raise KeyError("the consumer stopped (a stop signal)")

    with pytest.raises(KeyError):
        consume()
    assert cleaned.is_set()
