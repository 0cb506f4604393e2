"""Requests waiting for a busy thread (``api.busy_wait``) on the fake model.

They wait on the event loop, not in the server's worker threads: many requests piling up
on one busy thread must not hold up a turn on another thread, whether the thread is held
by this server's own turn or from outside it (the CLI, the page, another replica).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.memory import InMemorySaver

from apps.api import app as app_module
from apps.api.app import _acquire, _next, _Runtime, _ThreadGate, create_app
from apps.api.service import ApiService
from graph.settings import Settings
from tests.support.embeddings import word_store
from tests.support.locks import GateLocks
from tools.memory import OpenMemory
from tools.memory.locks import LocalThreadLocks
from tools.models import FakeChatModel

URL = "/v1/chat/completions"
WAITERS = 12
"""More requests on one thread than the server has worker threads (queue_size 1: 5)."""


class Holder:
    """Who holds thread "t" while a test's requests queue: this server's first turn, or a
    lock taken outside the server (the CLI's, the page's)."""

    def __init__(self, outside: bool, plain: LocalThreadLocks, gate: GateLocks) -> None:
        self.outside, self.plain, self.gate = outside, plain, gate
        self.held: AbstractContextManager[None] | None = None

    async def take(
        self, post: Callable[..., Coroutine[Any, Any, httpx.Response]]
    ) -> asyncio.Task[httpx.Response] | None:
        """Hold "t"; this server's first turn (its request, to await) or None."""
        if self.outside:
            self.held = self.plain.hold("t", 0)
            self.held.__enter__()
            return None
        first = asyncio.create_task(post("t", "first"))
        assert await asyncio.to_thread(self.gate.first_holds.wait, 30)
        return first

    def let_go(self) -> None:
        """Free "t" (the first turn then ends)."""
        if self.held is not None:
            self.held.__exit__(None, None, None)
        else:
            self.gate.go.set()


def busy_service(
    make_settings: Callable[..., Settings],
    locks: Any,
    busy_wait: float = 60,
    model: FakeChatModel | None = None,
    max_waiters: int = WAITERS,
) -> ApiService:
    settings = make_settings(
        prompts={"semantic": False},
        safety={"semantic": False},
        api={"busy_wait": busy_wait, "queue_size": 1, "max_thread_waiters": max_waiters},
    )
    memory = OpenMemory(InMemorySaver(), word_store(settings), locks)
    return ApiService(settings, memory, model=model or FakeChatModel(reply="ok then"))


def ask(text: str, *, stream: bool = False, user: str = "ada") -> dict[str, Any]:
    return {
        "model": "assistant",
        "user": user,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


Scenario = Callable[[Callable[..., Coroutine[Any, Any, httpx.Response]]], Awaitable[None]]


def serve(service: ApiService, scenario: Scenario) -> None:
    """Run ``scenario(post)`` against the app, started as a server starts it."""
    app = create_app(service=service)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api", timeout=120
            ) as http:

                async def post(
                    thread: str, text: str, stream: bool = False, user: str = "ada"
                ) -> httpx.Response:
                    body = ask(text, stream=stream, user=user)
                    return await http.post(URL, json=body, headers={"X-Thread-Id": thread})

                await scenario(post)

    asyncio.run(main())


async def settle() -> None:
    # Let every request started so far run up to where it waits.
    for _ in range(50):
        await asyncio.sleep(0)


@pytest.mark.parametrize("stream", [False, True])
def test_requests_waiting_for_a_thread_this_server_runs_hold_up_no_other_thread(
    make_settings: Callable[..., Settings], stream: bool
) -> None:
    locks = GateLocks()  # the first turn holds thread "t" until the test lets it go
    service = busy_service(make_settings, locks)

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        first = asyncio.create_task(post("t", "first"))
        assert await asyncio.to_thread(locks.first_holds.wait, 30)
        waiting = [asyncio.create_task(post("t", f"next {i}", stream)) for i in range(WAITERS)]
        await settle()
        # Waiting in worker threads, the 12 took all 5 and this turn never got one.
        other = await asyncio.wait_for(post("other", "meanwhile", stream), 30)
        assert other.status_code == 200, other.text
        assert not first.done() and not any(task.done() for task in waiting)
        locks.go.set()
        answers = await asyncio.gather(first, *waiting)
        assert [a.status_code for a in answers] == [200] * (WAITERS + 1), [
            a.text for a in answers if a.status_code != 200
        ]

    serve(service, scenario)
    texts = [text for kind, text in service.history("t", "ada") if kind == "human"]
    assert texts[0] == "first"
    assert sorted(texts[1:]) == sorted(f"next {i}" for i in range(WAITERS))


def test_requests_waiting_for_a_thread_held_outside_the_server_hold_up_no_other_thread(
    make_settings: Callable[..., Settings],
) -> None:
    locks = LocalThreadLocks()
    service = busy_service(make_settings, locks)

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        outside: AbstractContextManager[None] = locks.hold("t", 0)  # e.g. the CLI's turn
        outside.__enter__()
        waiting = [asyncio.create_task(post("t", f"next {i}")) for i in range(WAITERS)]
        await settle()
        other = await asyncio.wait_for(post("other", "meanwhile"), 30)
        assert other.status_code == 200, other.text
        assert not any(task.done() for task in waiting)
        outside.__exit__(None, None, None)
        answers = await asyncio.gather(*waiting)
        assert [a.status_code for a in answers] == [200] * WAITERS

    serve(service, scenario)
    texts = [text for kind, text in service.history("t", "ada") if kind == "human"]
    assert sorted(texts) == sorted(f"next {i}" for i in range(WAITERS))


def test_another_users_thread_is_404_at_once_while_its_owner_runs_a_turn(
    make_settings: Callable[..., Settings],
) -> None:
    in_model, go = threading.Event(), threading.Event()

    def reply(messages: list[BaseMessage]) -> str:
        if messages[-1].text == "slow one":
            in_model.set()
            assert go.wait(30), "the test never let the turn go on"
        return "ok then"

    service = busy_service(make_settings, LocalThreadLocks(), model=FakeChatModel(reply=reply))

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        assert (await post("t", "hello")).status_code == 200  # the thread is Ada's
        running = asyncio.create_task(post("t", "slow one"))
        assert await asyncio.to_thread(in_model.wait, 30)
        # Not after Ada's turn (busy_wait is 60 s): whose thread it is is known already.
        refused = await asyncio.wait_for(post("t", "what did ada say?", user="mallory"), 30)
        assert refused.status_code == 404, refused.text
        assert not running.done()
        go.set()
        assert (await running).status_code == 200

    serve(service, scenario)
    assert [k for k, _ in service.history("t", "ada")] == ["human", "ai"] * 2


@pytest.mark.parametrize("settle_rounds", [1, 5, 50, 400])
def test_a_request_cancelled_while_it_waits_for_a_thread_leaves_the_thread_free(
    make_settings: Callable[..., Settings], settle_rounds: int
) -> None:
    locks = LocalThreadLocks()
    service = busy_service(make_settings, locks)

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        outside: AbstractContextManager[None] = locks.hold("t", 0)
        outside.__enter__()
        # Cancelled at different points of its wait: in the gate, trying the lock in a
        # worker, or waiting on the loop between tries (a forced shutdown cancels so).
        waiting = asyncio.create_task(post("t", "given up"))
        for _ in range(settle_rounds):
            await asyncio.sleep(0.001)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        outside.__exit__(None, None, None)
        again = await asyncio.wait_for(post("t", "now"), 30)
        assert again.status_code == 200, again.text

    serve(service, scenario)
    history = service.history("t", "ada")
    # Nothing of the request that gave up, or (its worker was running the turn already)
    # the turn stopped at its first token and kept "[stopped]", as the README says.
    assert history[-2:] == [("human", "now"), ("ai", "ok then")]
    assert history[:-2] in ([], [("human", "given up"), ("ai", "[stopped]")])


@pytest.mark.parametrize("outside", [False, True])
def test_a_thread_busy_past_busy_wait_is_409_and_free_again_afterwards(
    make_settings: Callable[..., Settings], outside: bool
) -> None:
    gate = GateLocks()
    plain = LocalThreadLocks()
    service = busy_service(make_settings, plain if outside else gate, busy_wait=0.3)

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        holder = Holder(outside, plain, gate)
        first = await holder.take(post)
        refused = await post("t", "too soon")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "thread_busy"
        holder.let_go()
        if first is not None:
            assert (await first).status_code == 200
        again = await post("t", "now")
        assert again.status_code == 200, again.text

    serve(service, scenario)
    texts = [text for kind, text in service.history("t", "ada") if kind == "human"]
    assert "too soon" not in texts and texts[-1] == "now"


class _Client:
    """What the gate asks of a request: whether its client is still there."""

    def __init__(self) -> None:
        self.gone = False

    async def is_disconnected(self) -> bool:
        return self.gone


def test_the_gate_lets_waiters_in_by_arrival_and_forgets_an_idle_thread() -> None:
    runtime = _Runtime(None, None)

    async def scenario() -> list[str]:
        gate = _ThreadGate()
        order: list[str] = []
        assert await gate.acquire("t", 0, _Client(), runtime)  # type: ignore[arg-type]

        async def wait(name: str) -> None:
            assert await gate.acquire("t", 30, _Client(), runtime)  # type: ignore[arg-type]
            order.append(name)
            await asyncio.sleep(0)
            gate.release("t")

        tasks = []
        for name in ["a", "b", "c", "d"]:
            tasks.append(asyncio.create_task(wait(name)))
            await settle()
        gate.release("t")
        await asyncio.gather(*tasks)
        assert gate._locks == {}
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("wait", [0.0, 30.0])
def test_a_free_thread_is_taken_at_once_whatever_the_wait(wait: float) -> None:
    runtime = _Runtime(None, None)

    async def scenario() -> None:
        gate = _ThreadGate()
        for _ in range(3):
            assert await gate.acquire("t", wait, _Client(), runtime)  # type: ignore[arg-type]
            gate.release("t")
        assert gate._locks == {}

    asyncio.run(scenario())


def test_a_client_that_leaves_while_waiting_gives_up_its_place() -> None:
    runtime = _Runtime(None, None)

    async def scenario() -> None:
        gate = _ThreadGate()
        assert await gate.acquire("t", 0, _Client(), runtime)  # type: ignore[arg-type]
        leaving, staying = _Client(), _Client()
        left = asyncio.create_task(gate.acquire("t", 30, leaving, runtime))  # type: ignore[arg-type]
        await settle()
        stays = asyncio.create_task(gate.acquire("t", 30, staying, runtime))  # type: ignore[arg-type]
        await settle()
        leaving.gone = True
        assert await left is False
        gate.release("t")
        assert await stays is True  # the place given up did not keep the thread
        gate.release("t")
        assert gate._locks == {}

    asyncio.run(scenario())


def test_acquire_releases_a_lock_it_got_as_its_wait_ran_out() -> None:
    runtime = _Runtime(None, None)

    async def scenario() -> None:
        lock = asyncio.Lock()
        await lock.acquire()
        waiting = asyncio.create_task(_acquire(lock, 0.2, _Client(), runtime))  # type: ignore[arg-type]
        assert await waiting is None  # the wait ran out
        lock.release()
        assert not lock.locked()  # nobody holds a lock for a request that got 409
        assert await _acquire(lock, 0, _Client(), runtime) is True  # type: ignore[arg-type]

    asyncio.run(scenario())


@pytest.mark.parametrize("passes", [0, 1, 2, 3])
@pytest.mark.parametrize("event", [("done", None), ("error", RuntimeError("thread busy"))])
def test_a_request_cancelled_as_its_event_arrives_stays_cancelled(
    passes: int, event: tuple[str, Any]
) -> None:
    # The event and the cancellation in the same pass of the loop, or a few passes apart:
    # the request must end cancelled, with its turn told to stop, whichever came first
    # (asyncio.wait_for on Python 3.11 returned the event and lost the cancellation).
    async def scenario() -> None:
        events: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        waiting = asyncio.create_task(_next(events, _Client(), stop))  # type: ignore[arg-type]
        for _ in range(3):
            await asyncio.sleep(0)  # it waits for the queue
        events.put_nowait(event)
        for _ in range(passes):
            await asyncio.sleep(0)
        waiting.cancel()
        try:
            got = await waiting
        except asyncio.CancelledError:
            assert stop.is_set()
            assert events.qsize() == 1  # the event was not taken by a request that is gone
        else:
            # Only once the request had its event before the cancellation came.
            assert passes > 0 and got == event

    asyncio.run(scenario())


# --- the most requests that may wait for one thread (api.max_thread_waiters) -----------------

LINE = 3


@pytest.fixture
def gates(monkeypatch: pytest.MonkeyPatch) -> list[_ThreadGate]:
    """The thread gates the app makes (one per start), to see who waits in its lines."""
    made: list[_ThreadGate] = []

    class Recorded(_ThreadGate):
        def __init__(self, max_waiting: int | None = None) -> None:
            super().__init__(max_waiting)
            made.append(self)

    monkeypatch.setattr(app_module, "_ThreadGate", Recorded)
    return made


async def until(check: Callable[[], bool]) -> None:
    """Wait (on the loop) until ``check()`` holds: a request reached its place in line.

    A request for a busy thread may first ask a worker whose thread it is, or try the lock
    in one: a few loop passes do not see it there.
    """

    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 30)


def expect_line_full(response: httpx.Response, most: int) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "conflict_error",
        "thread_busy",
        "thread_id",
    )
    assert "api.max_thread_waiters" in error["message"]
    assert (str(most) in error["message"]) if most else ("no request may" in error["message"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("outside", [False, True])
def test_one_request_more_than_may_wait_for_a_thread_is_409_at_once(
    make_settings: Callable[..., Settings], gates: list[_ThreadGate], outside: bool, stream: bool
) -> None:
    gate = GateLocks()  # this server's first turn holds "t" until the test lets it go
    plain = LocalThreadLocks()  # or a turn outside the server (the CLI) holds it
    service = busy_service(make_settings, plain if outside else gate, max_waiters=LINE)

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        holder = Holder(outside, plain, gate)
        first = await holder.take(post)
        waiting = []
        for i in range(LINE):
            waiting.append(asyncio.create_task(post("t", f"next {i}", stream)))
            await until(lambda: gates[-1].waiting("t") == len(waiting))
        # busy_wait is 60 s: refused before it, while the others still wait.
        for _ in range(2):
            expect_line_full(await asyncio.wait_for(post("t", "one too many", stream), 30), LINE)
        assert not any(task.done() for task in waiting)
        # The line is per thread: another thread's turn runs.
        assert (await asyncio.wait_for(post("other", "meanwhile", stream), 30)).status_code == 200
        holder.let_go()
        answers = await asyncio.gather(*waiting, *([first] if first else []))
        assert [a.status_code for a in answers] == [200] * len(answers)
        # Free again, the thread takes a request at once.
        assert (await post("t", "now")).status_code == 200

    serve(service, scenario)
    texts = [text for kind, text in service.history("t", "ada") if kind == "human"]
    assert "one too many" not in texts
    assert sorted(texts[:-1]) == sorted(
        [f"next {i}" for i in range(LINE)] + ["first"] * (not outside)
    )
    assert texts[-1] == "now"


@pytest.mark.parametrize("outside", [False, True])
def test_a_waiter_that_is_cancelled_or_leaves_frees_its_place_in_the_line(
    make_settings: Callable[..., Settings], gates: list[_ThreadGate], outside: bool
) -> None:
    gate = GateLocks()
    plain = LocalThreadLocks()
    service = busy_service(make_settings, plain if outside else gate, max_waiters=LINE)

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        holder = Holder(outside, plain, gate)
        first = await holder.take(post)
        waiting = []
        for i in range(LINE):
            waiting.append(asyncio.create_task(post("t", f"next {i}")))
            await until(lambda: gates[-1].waiting("t") == len(waiting))
        expect_line_full(await asyncio.wait_for(post("t", "refused"), 30), LINE)
        # Two of them give up (a forced shutdown, a client that hangs up): two places.
        for task in waiting[:2]:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert gates[-1].waiting("t") == LINE - 2
        later = []
        for i in range(2):
            later.append(asyncio.create_task(post("t", f"later {i}")))
            await until(lambda: gates[-1].waiting("t") == LINE - 2 + len(later))
        expect_line_full(await asyncio.wait_for(post("t", "refused again"), 30), LINE)
        assert not any(task.done() for task in [waiting[2], *later])
        holder.let_go()
        answers = await asyncio.gather(waiting[2], *later, *([first] if first else []))
        assert [a.status_code for a in answers] == [200] * len(answers)

    serve(service, scenario)
    texts = [text for kind, text in service.history("t", "ada") if kind == "human"]
    assert "refused" not in texts and "refused again" not in texts
    assert {"next 2", "later 0", "later 1"} <= set(texts)


@pytest.mark.parametrize("outside", [False, True])
def test_with_no_place_in_the_line_a_busy_thread_is_409_at_once_whatever_the_wait(
    make_settings: Callable[..., Settings], outside: bool
) -> None:
    gate = GateLocks()
    plain = LocalThreadLocks()
    service = busy_service(make_settings, plain if outside else gate, max_waiters=0)

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        holder = Holder(outside, plain, gate)
        first = await holder.take(post)
        expect_line_full(await asyncio.wait_for(post("t", "refused"), 30), 0)
        holder.let_go()
        if first is not None:
            assert (await first).status_code == 200
        # A free thread is no wait: one request after another each runs.
        for i in range(3):
            assert (await post("t", f"after {i}")).status_code == 200

    serve(service, scenario)
    texts = [text for kind, text in service.history("t", "ada") if kind == "human"]
    assert "refused" not in texts and texts[-3:] == ["after 0", "after 1", "after 2"]


def test_a_client_that_leaves_the_line_frees_its_place() -> None:
    runtime = _Runtime(None, None)

    async def scenario() -> None:
        gate = _ThreadGate(max_waiting=1)
        assert await gate.acquire("t", 0, _Client(), runtime)  # type: ignore[arg-type]
        leaving = _Client()

        async def wait(client: _Client) -> bool:
            with gate.line("t") as place:
                place.join()
                return await gate.acquire("t", 30, client, runtime)  # type: ignore[arg-type]

        left = asyncio.create_task(wait(leaving))
        await settle()
        assert gate.waiting("t") == 1
        with gate.line("t") as place, pytest.raises(Exception) as refused:
            place.join()
        assert getattr(refused.value, "status", None) == 409
        leaving.gone = True
        assert await left is False
        assert gate.waiting("t") == 0
        stays = asyncio.create_task(wait(_Client()))
        await settle()
        gate.release("t")
        assert await stays is True
        gate.release("t")
        assert gate._locks == {} and gate._waiting == {}

    asyncio.run(scenario())


@pytest.mark.parametrize("bad", [-1, 1.5, "many", 10001])
def test_max_thread_waiters_must_be_a_whole_number_from_0(
    make_settings: Callable[..., Settings], bad: object
) -> None:
    from graph.settings import SettingsError

    with pytest.raises((SettingsError, ValueError), match="max_thread_waiters"):
        make_settings(api={"max_thread_waiters": bad})


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_whose_turn_runs_no_longer_takes_a_place_in_the_line(
    make_settings: Callable[..., Settings], gates: list[_ThreadGate], stream: bool
) -> None:
    # A whole (not streamed) reply's request is in the server until its turn ends; from
    # the moment the turn holds the thread it waits for nothing, and its place is free.
    in_model = {"a": threading.Event(), "b": threading.Event()}
    go = {"a": threading.Event(), "b": threading.Event()}

    def reply(messages: list[BaseMessage]) -> str:
        name = messages[-1].text
        if name in in_model:
            in_model[name].set()
            assert go[name].wait(30), "the test never let the turn go on"
        return "ok then"

    service = busy_service(
        make_settings, LocalThreadLocks(), model=FakeChatModel(reply=reply), max_waiters=1
    )

    async def scenario(post: Callable[..., Coroutine[Any, Any, httpx.Response]]) -> None:
        a = asyncio.create_task(post("t", "a", stream))
        assert await asyncio.to_thread(in_model["a"].wait, 30)
        b = asyncio.create_task(post("t", "b", stream))
        await until(lambda: gates[-1].waiting("t") == 1)
        expect_line_full(await asyncio.wait_for(post("t", "refused", stream), 30), 1)
        go["a"].set()
        assert (await a).status_code == 200
        assert await asyncio.to_thread(in_model["b"].wait, 30)  # b's turn runs
        assert gates[-1].waiting("t") == 0  # b's turn holds the thread: b waits no more
        c = asyncio.create_task(post("t", "c", stream))  # so c has a place
        await until(lambda: gates[-1].waiting("t") == 1)
        assert not c.done()
        go["b"].set()
        assert [(await b).status_code, (await c).status_code] == [200, 200]

    serve(service, scenario)
    texts = [text for kind, text in service.history("t", "ada") if kind == "human"]
    assert texts == ["a", "b", "c"]
