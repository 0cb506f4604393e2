"""Many users on one model: the fair bounded queue, and shared tokenizers under threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings

from apps.queue import MAX_RETRY_AFTER, ModelQueue, QueuedLocks, QueueFullError
from apps.turns import GenerationStopped
from tools.memory.locks import LocalThreadLocks, ThreadBusyError

WAIT = 30.0
"""Upper bound for a thread to reach a state (never a timing assertion)."""


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)


def test_waiting_turns_are_served_first_come_first_served() -> None:
    queue = ModelQueue(size=10)
    order: list[int] = []
    threads = []
    with queue.turn():  # the model is busy: everyone queues up in arrival order
        for n in range(8):

            def work(n: int = n) -> None:
                with queue.turn():
                    order.append(n)

            thread = threading.Thread(target=work)
            thread.start()
            threads.append(thread)
            until(lambda n=n: queue.waiting == n + 1)  # type: ignore[misc]
    for thread in threads:
        thread.join(WAIT)
    assert order == list(range(8))
    assert queue.served == 9 and queue.waiting == 0 and not queue.busy


def test_one_turn_at_a_time_on_the_model() -> None:
    queue = ModelQueue(size=50)
    inside = 0
    most = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with queue.turn():
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.002)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert most == 1
    assert queue.served == 20


@pytest.mark.parametrize("size", [0, 1, 3])
def test_a_full_queue_refuses_at_once_with_a_retry_after(size: int) -> None:
    queue = ModelQueue(size=size)
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        with queue.turn():
            started.set()
            release.wait(WAIT)

    def wait_in_line() -> None:
        with queue.turn():
            pass

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    started.wait(WAIT)
    for n in range(size):
        thread = threading.Thread(target=wait_in_line)
        thread.start()
        threads.append(thread)
        until(lambda n=n: queue.waiting == n + 1)  # type: ignore[misc]
    with pytest.raises(QueueFullError) as refused, queue.turn():
        pass
    assert refused.value.retry_after >= 1
    assert refused.value.waiting == size
    assert queue.waiting == size, "the refused turn took a place"
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert queue.refused == 1 and queue.served == size + 1


def test_retry_after_grows_with_the_turns_ahead() -> None:
    now = [0.0]
    queue = ModelQueue(size=5, clock=lambda: now[0])
    for seconds in (4.0, 4.0, 300.0, 4.0):  # one slow turn (the first loads the models)
        with queue.turn():
            now[0] += seconds
    assert queue.retry_after() == 4
    release = threading.Event()

    def hold() -> None:
        with queue.turn():
            release.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    until(lambda: queue.busy)
    stop = threading.Event()
    waiting = threading.Thread(target=_wait_until_stopped, args=(queue, stop))
    waiting.start()
    until(lambda: queue.waiting == 1)
    assert queue.retry_after() == 8  # one ahead and the one running
    stop.set()
    waiting.join(WAIT)
    release.set()
    holder.join(WAIT)


def test_retry_after_is_capped() -> None:
    now = [0.0]
    queue = ModelQueue(size=5, clock=lambda: now[0])
    with queue.turn():
        now[0] += 500.0  # the first turn loaded the models
    assert queue.retry_after() == MAX_RETRY_AFTER


def _wait_until_stopped(queue: ModelQueue, stop: threading.Event) -> None:
    with pytest.raises(GenerationStopped), queue.turn(stop):
        pass


def test_a_caller_that_gives_up_leaves_the_queue_and_the_next_one_moves_up() -> None:
    queue = ModelQueue(size=5)
    order: list[str] = []
    release = threading.Event()

    def hold() -> None:
        with queue.turn():
            release.wait(WAIT)

    def queued(name: str, stop: threading.Event | None = None) -> None:
        try:
            with queue.turn(stop):
                order.append(name)
        except GenerationStopped:
            order.append(f"{name} gave up")

    holder = threading.Thread(target=hold)
    holder.start()
    until(lambda: queue.busy)
    gone = threading.Event()
    first = threading.Thread(target=queued, args=("first", gone))
    first.start()
    until(lambda: queue.waiting == 1)
    second = threading.Thread(target=queued, args=("second",))
    second.start()
    until(lambda: queue.waiting == 2)
    gone.set()  # the first client disconnects while waiting
    first.join(WAIT)
    assert order == ["first gave up"]
    assert queue.waiting == 1 and queue.cancelled == 1
    release.set()
    second.join(WAIT)
    holder.join(WAIT)
    assert order == ["first gave up", "second"]


def test_queued_locks_take_the_thread_first_and_never_queue_a_busy_thread() -> None:
    locks = LocalThreadLocks()
    queue = ModelQueue(size=0)
    queued = QueuedLocks(locks, queue)
    with locks.hold("t", 0), pytest.raises(ThreadBusyError), queued.hold("t", 0):
        pass
    assert queue.refused == 0 and queue.served == 0
    with queued.hold("t", 0):
        assert queue.busy
        # the model is taken: another thread's turn is refused, its thread lock freed
        with pytest.raises(QueueFullError), queued.hold("u", 0):
            pass
        with locks.hold("u", 0):
            pass
    assert not queue.busy


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError):
        ModelQueue(size=-1)


# --- shared tokenizers -------------------------------------------------------------------


class BorrowingTokenizer:
    """Behaves like a Hugging Face fast tokenizer (a PyO3 object with a RefCell): a call
    while another thread is inside raises ``RuntimeError: Already borrowed``."""

    def __init__(self) -> None:
        self._inside = threading.Lock()
        self.calls = 0

    def encode(self, text: str, add_special_tokens: bool = True) -> Any:
        if not self._inside.acquire(blocking=False):
            raise RuntimeError("Already borrowed")
        try:
            self.calls += 1
            time.sleep(0.001)  # the Rust side runs without the GIL
            ids = list(range(len(text.split()) + (2 if add_special_tokens else 0)))
            return type("Encoding", (), {"ids": ids})()
        finally:
            self._inside.release()


class TokenizingEmbeddings(Embeddings):
    """An embedding model whose every call goes through one shared tokenizer."""

    def __init__(self, tokenizer: BorrowingTokenizer) -> None:
        self.tokenizer = tokenizer
        self.model_name = "borrowing"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(len(self.tokenizer.encode(t).ids))] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def hammer(call: Callable[[int], object], threads: int = 8, calls: int = 25) -> list[BaseException]:
    """Call ``call`` from many threads at once; the exceptions raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        start.wait(WAIT)
        for i in range(calls):
            try:
                call(n * calls + i)
            except Exception as exc:
                errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(WAIT)
    return errors


def test_a_shared_fast_tokenizer_raises_already_borrowed_under_threads() -> None:
    # The hazard itself (what the guard below prevents): unguarded, threads collide.
    model = TokenizingEmbeddings(BorrowingTokenizer())
    errors = hammer(lambda n: model.embed_query(f"text number {n}"))
    assert errors, "no collision: the stand-in does not reproduce the hazard"
    assert all(str(e) == "Already borrowed" for e in errors)


def test_the_shared_embedding_model_is_safe_under_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.models import embeddings

    tokenizer = BorrowingTokenizer()
    monkeypatch.setattr(embeddings, "_EMBEDDINGS", None)
    monkeypatch.setattr(embeddings, "_load_embeddings", lambda: TokenizingEmbeddings(tokenizer))
    shared = embeddings.get_embeddings()
    assert isinstance(shared, embeddings.SerialEmbeddings)
    assert shared.model_name == "borrowing"
    cached = embeddings.CachedQueryEmbeddings()  # what routing and retrieval use
    errors = hammer(
        lambda n: (
            shared.embed_documents([f"doc {n}", "another"]),
            shared.embed_query(f"query {n}"),
            cached.embed_query(f"routed {n}"),
        )
    )
    assert errors == []
    assert tokenizer.calls == 8 * 25 * 4


def test_the_chunk_counter_is_safe_under_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.documents import chunking

    tokenizer = BorrowingTokenizer()
    monkeypatch.setattr(chunking, "get_tokenizer", lambda: tokenizer)
    counter = chunking.embedder_tokens()
    results: list[int] = []
    errors = hammer(lambda n: results.append(counter.pieces("one two three")))
    assert errors == []
    assert set(results) == {3}
