"""The FastAPI app: OpenAI's chat completions and models endpoints over the assistant.

- ``POST /v1/chat/completions``: ``stream: true`` answers with server-sent events in
  OpenAI's ``chat.completion.chunk`` format ending with ``data: [DONE]``; otherwise one
  ``chat.completion`` object with ``usage``. The ``assistant`` object (on the completion,
  and on the last chunk) is our extension: thread, concept, safety verdict, sources.
- ``GET /v1/models``: the one model that answers.
- Errors are OpenAI's error object ``{"error": {"message", "type", "param", "code"}}``: 400
  bad input, 401 bad key, 403 a ``user`` other than the one the key is bound to, 404
  unknown thread or path, 405 wrong method, 409 busy thread (after ``api.busy_wait``, or at
  once when ``api.max_thread_waiters`` wait for it already), 413 huge body, 503 with
  ``Retry-After`` when the model queue is full.

Each turn runs in a worker thread (the graph is synchronous) and takes its place in the
shared :class:`apps.queue.ModelQueue`. A request for a thread on which another turn runs
waits on the event loop (:class:`_ThreadGate`, ``api.busy_wait``), not in a worker: only
turns that hold their thread take a worker, so requests piling up on one busy thread
hold up no other thread's turn, and at most ``api.max_thread_waiters`` of them wait. The
response starts with the first token (or the error), so every error before the reply has
its own status code; a client that goes away (while waiting or while streaming) sets the
turn's stop event, which frees its place in the queue or ends the generation at the next
token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from apps.api.schemas import ChatRequest
from apps.api.service import (
    ApiService,
    NoSuchThreadError,
    Outcome,
    RequestError,
    Turn,
    UserNotAllowedError,
    extension,
    to_turn,
)
from apps.queue import QueueFullError
from apps.turns import GenerationStopped, NotYourThreadError, safety_verdict
from graph.settings import ApiKey, Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger("assistant.api")

DISCONNECT_POLL = 0.25
"""Seconds between looks at whether a waiting client is still there."""

UNSUPPORTED_CODES = frozenset({"unsupported_parameter", "unsupported_value"})
"""Validation error types (``apps.api.schemas``) reported as the error's ``code``."""

THREAD_POLL = 0.25
"""Seconds between tries for a thread that a turn outside this server holds (the CLI, the
web page, another replica): its lock is tried without waiting, the wait is on the loop."""

SHUTDOWN_WAIT = 10.0
"""Seconds the shutdown waits for stopped turns to end before it closes the memory (a
stopped turn ends at its next token; one still reading a long prompt may take longer)."""


class ApiError(Exception):
    """An error the client gets as OpenAI's error object, with its status code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """OpenAI's error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        """The error as a JSON response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(exc: BaseException) -> ApiError:
    """The HTTP error a turn's exception becomes (500 for anything unexpected)."""
    from graph.errors import InvalidMessageError, MessageTooLongError
    from tools.memory import MemoryBackendError, ThreadBusyError
    from tools.models import ModelLoadError

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestError):
        return ApiError(400, str(exc), param=exc.param, code=exc.code)
    if isinstance(exc, UserNotAllowedError):
        return ApiError(403, str(exc), type="permission_error", param="user", code="wrong_user")
    if isinstance(exc, NoSuchThreadError | NotYourThreadError):
        return ApiError(404, "no such thread for this user", param="thread_id", code="not_found")
    if isinstance(exc, ThreadBusyError):
        return ApiError(
            409,
            "this thread is busy: another turn is running on it; retry when it is done",
            type="conflict_error",
            param="thread_id",
            code="thread_busy",
        )
    if isinstance(exc, QueueFullError):
        return ApiError(
            503,
            str(exc),
            type="server_overloaded",
            code="queue_full",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, MessageTooLongError):
        return ApiError(
            400, f"the message is too long: {exc}", param="messages", code="message_too_long"
        )
    if isinstance(exc, InvalidMessageError):
        return ApiError(400, str(exc), param="messages", code="invalid_message")
    if isinstance(exc, GenerationStopped):
        # Only the shutdown stops a turn whose client is still there (a client that went
        # away gets no answer).
        return ApiError(
            503, "the turn was stopped: the server is shutting down", type="server_error"
        )
    if isinstance(exc, ModelLoadError | MemoryBackendError):
        return ApiError(503, f"the assistant is unavailable: {exc}", type="server_error")
    log.error("turn failed", exc_info=(type(exc), exc, exc.__traceback__))
    return ApiError(500, "the turn failed; see the server log", type="server_error")


def _body_path(error: ErrorDetails, body: Any) -> tuple[list[str | int], bool]:
    """The error's location as a path in the body, and whether it ends at a union member.

    Pydantic's location also names what it tried that is not in the body: a union's member
    (``stop.list[str]``, ``function_call.Named``), a tagged union's tag
    (``tools.0.function.function.name``, where the first ``function`` is the tag),
    validators (``function-...``). Walking the body itself tells them apart: a part that is
    no key (or index) of the body there is dropped, unless it is the field the error says
    is missing.

    Args:
        error: One validation error.
        body: The body as parsed JSON (None when it is none).

    Returns:
        The path, and True when the error's last part was dropped: that member failed as a
        whole (the input is not of its type), not at one of its fields.
    """
    path: list[str | int] = []
    loc = error["loc"]
    at = body
    dropped = False
    for index, part in enumerate(loc):
        key = isinstance(at, dict) and isinstance(part, str) and part in at
        item = isinstance(at, list) and isinstance(part, int) and 0 <= part < len(at)
        if key or item:
            at = at[part]
        elif index == len(loc) - 1 and error["type"] == "missing" and not _is_member_name(part):
            at = None
        else:
            dropped = index == len(loc) - 1
            continue
        path.append(part)
    return path, dropped


def _is_member_name(part: int | str) -> bool:
    # What pydantic names a union's member or a validator: never a field of the body.
    if isinstance(part, int):
        return False
    return part.startswith("function-") or "[" in part


def _first_error(errors: list[ErrorDetails], body: Any) -> tuple[ErrorDetails, str, str]:
    """The error to report, as its body path and message.

    The error of the union member the input's type matches: ``content`` is a string or a
    list of parts, and a list with a part missing ``text`` fails both members, where
    "Input should be a valid string" first would be the wrong advice. A member whose type
    the input has but not its bounds (five ``stop`` sequences, four allowed) comes next;
    when the input has no member's type (``"stop": 7``), every member's message is given.

    Returns:
        The error, its path (dotted; empty for the body itself) and the message.
    """
    found = [(error, *_body_path(error, body)) for error in errors]
    for error, path, dropped in found:
        if not dropped:
            return error, _dotted(path), error["msg"]
    for error, path, _ in found:
        if not _wrong_type(error):  # of the member's type, but out of its bounds
            return error, _dotted(path), error["msg"]
    error, path, _ = found[0]
    messages = [error["msg"]]
    for other, other_path, _ in found[1:]:
        if other_path == path and other["msg"] not in messages:
            messages.append(other["msg"])
    tail = "".join(f", or {text[:1].lower()}{text[1:]}" for text in messages[1:])
    return error, _dotted(path), messages[0] + tail


def _wrong_type(error: ErrorDetails) -> bool:
    # "Input should be a valid string / an object / 'auto' or 'none'": not of that type.
    return error["type"].endswith("_type") or error["type"] == "literal_error"


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path)


def _parsed(body: bytes) -> Any:
    """The body as JSON, for naming an error's place in it; None when it is no JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # no JSON (nor UTF-8), or nested past the parser
        return None


class _ThreadGate:
    """One turn at a time per thread among this server's requests, waited for on the loop.

    A request for a busy thread used to wait for the thread's lock in a worker thread, up
    to ``api.busy_wait`` seconds: a few clients repeating on one thread took every worker,
    and turns on other threads waited behind them. Here the wait is an :class:`asyncio.Lock`
    per thread (first come, first served), which costs a coroutine, not a worker. At most
    ``max_waiting`` requests wait for one thread (``api.max_thread_waiters``): one more is
    refused at once, so one client repeating on one thread cannot pile up requests without
    end. Used on the event loop only; the lock of a thread nobody holds or waits for is
    forgotten.
    """

    def __init__(self, max_waiting: int | None = None) -> None:
        """A gate; ``max_waiting`` None lets any number wait (a gate outside a server)."""
        self.max_waiting = max_waiting
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._waiting: dict[str, int] = {}

    async def acquire(
        self, thread_id: str, wait: float, request: Request, runtime: _Runtime
    ) -> bool:
        """Wait up to ``wait`` seconds for the thread; False if the client went away.

        Raises:
            ApiError: 409 when the thread stayed busy for ``wait`` seconds, or at once when
                ``max_waiting`` requests wait for it already; 503 when the server began
                shutting down meanwhile.
        """
        lock, users = self._locks.get(thread_id, (asyncio.Lock(), 0))
        self._locks[thread_id] = (lock, users + 1)
        acquired: bool | None = False
        try:
            acquired = await _acquire(lock, wait, request, runtime)
            if acquired is None:
                raise api_error(_busy(thread_id, wait))
            return acquired
        finally:
            if not acquired:
                self._forget(thread_id)

    @contextmanager
    def line(self, thread_id: str) -> Iterator[_Place]:
        """A request's place in the line of those waiting for the thread, for the block.

        The place is taken (:meth:`_Place.join`) once the request has to wait, and given
        up when its turn holds the thread (:meth:`_Place.leave`) or at the block's end,
        however the request ends: given up, cancelled or refused.
        """
        place = _Place(self, thread_id)
        try:
            yield place
        finally:
            place.leave()

    def waiting(self, thread_id: str) -> int:
        """How many requests wait for the thread (have a place in its line)."""
        return self._waiting.get(thread_id, 0)

    def _join(self, thread_id: str) -> None:
        count = self.waiting(thread_id)
        if self.max_waiting is not None and count >= self.max_waiting:
            raise _line_full(self.max_waiting)
        self._waiting[thread_id] = count + 1

    def _leave(self, thread_id: str) -> None:
        left = self._waiting[thread_id] - 1
        if left:
            self._waiting[thread_id] = left
        else:
            del self._waiting[thread_id]

    def busy(self, thread_id: str) -> bool:
        """Whether a request of this server holds the thread (or waits for it)."""
        return thread_id in self._locks

    def release(self, thread_id: str) -> None:
        """Let the thread's next request go on (call it on the event loop)."""
        lock, _ = self._locks[thread_id]
        lock.release()
        self._forget(thread_id)

    def _forget(self, thread_id: str) -> None:
        lock, users = self._locks[thread_id]
        if users > 1:
            self._locks[thread_id] = (lock, users - 1)
        else:
            del self._locks[thread_id]


class _Place:
    """One request's place in the line for a thread (:meth:`_ThreadGate.line`)."""

    def __init__(self, gate: _ThreadGate, thread_id: str) -> None:
        self.gate = gate
        self.thread_id = thread_id
        self.joined = False

    def join(self) -> None:
        """Take a place in the line, once (call it on the event loop).

        Raises:
            ApiError: 409 ``thread_busy`` at once when ``max_waiting`` requests wait
                already.
        """
        if not self.joined:
            self.gate._join(self.thread_id)
            self.joined = True

    def leave(self) -> None:
        """Give the place up (nothing if none was taken; call it on the event loop)."""
        if self.joined:
            self.joined = False
            self.gate._leave(self.thread_id)


def _line_full(most: int) -> ApiError:
    # 409 thread_busy, as when the wait runs out: the thread is what is busy, and the
    # remedy is the same (retry once its turn is done). Not 429: that says this client or
    # key sends too much, and a full line on one thread says nothing about either.
    waiters = "no request may wait" if most == 0 else f"{most} request(s) wait already"
    return ApiError(
        409,
        f"this thread is busy: another turn is running on it and {waiters} for it "
        "(api.max_thread_waiters); retry when it is done",
        type="conflict_error",
        param="thread_id",
        code="thread_busy",
    )


async def _acquire(
    lock: asyncio.Lock, wait: float, request: Request, runtime: _Runtime
) -> bool | None:
    """Acquire ``lock`` within ``wait`` seconds, keeping the place in line.

    Returns:
        True when held, False when the client disconnected, None when ``wait`` ran out.

    Raises:
        ApiError: 503 when the server began shutting down.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # One acquiring task for the whole wait: cancelling and retrying would lose the place.
    task = asyncio.ensure_future(lock.acquire())
    held = False
    try:
        # One pass of the loop: a free lock is taken in the task's first step, so a free
        # thread is never a 409, also when ``wait`` is 0.
        await asyncio.sleep(0)
        while True:
            if task.done():
                held = True
                return True
            left = deadline - loop.time()
            await asyncio.wait({task}, timeout=max(0.0, min(DISCONNECT_POLL, left)))
            if task.done():
                held = True
                return True
            if runtime.closing:
                raise ApiError(503, "the assistant is shutting down", type="server_error")
            if left <= 0:
                return None
            if await request.is_disconnected():
                return False
    finally:
        if not held:
            if task.done() and not task.cancelled():
                lock.release()  # acquired just as this request gave up: the next one goes
            else:
                task.cancel()


def _busy(thread_id: str, waited: float) -> Exception:
    from tools.memory import ThreadBusyError

    return ThreadBusyError(thread_id, waited)


def _is_busy(exc: BaseException) -> bool:
    from tools.memory import ThreadBusyError

    return isinstance(exc, ThreadBusyError)


class _Runtime:
    """What the routes share: the service (opened by the lifespan or given) and threads."""

    def __init__(self, settings: Settings | None, service: ApiService | None) -> None:
        self.settings = settings
        self.service = service
        self.executor: ThreadPoolExecutor | None = None
        self.closing = False
        self.left_open: ExitStack | None = None
        """The memory, when turns outlived the shutdown's wait (closed at the process's exit)."""
        # The turns in their worker threads, with their stop events (shutdown stops them).
        self._turns: dict[Future[None], threading.Event] = {}
        self._guard = threading.Lock()
        self.gate = _ThreadGate()

    def start(self, service: ApiService) -> None:
        """Serve with ``service``: one worker thread per turn the queue lets run or wait."""
        self.service = service
        # The queue's places plus the running turn, and a few for refusals on their way
        # out: a request never waits for a worker, so a full queue is a 503 at once. A
        # request waiting for its thread takes none (_ThreadGate).
        # A gate is bound to its event loop.
        self.gate = _ThreadGate(service.settings.api.max_thread_waiters)
        workers = service.queue.size + 4
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="api-turn")
        self.closing = False  # an app may be started again after a shutdown (tests)

    def get(self) -> ApiService:
        if self.closing:
            raise ApiError(503, "the assistant is shutting down", type="server_error")
        if self.service is None or self.executor is None:
            raise ApiError(503, "the assistant is starting", type="server_error")
        return self.service

    def submit(
        self,
        work: Callable[[], None],
        stop: threading.Event,
        cancelled: Callable[[], None] | None = None,
    ) -> None:
        """Run a turn's ``work`` in a worker thread; :meth:`stop` sets ``stop`` if it runs.

        Args:
            work: The turn.
            stop: Its stop event.
            cancelled: Called (from any thread) if ``work`` is cancelled before it runs
                (the shutdown drops turns that never got a worker).

        Raises:
            ApiError: 503 when the server is shutting down.
        """
        assert self.executor is not None  # get() checked it
        with self._guard:
            if self.closing:
                raise ApiError(503, "the assistant is shutting down", type="server_error")
            future = self.executor.submit(work)
            self._turns[future] = stop
        future.add_done_callback(self._forget)
        if cancelled is not None:
            future.add_done_callback(lambda done: cancelled() if done.cancelled() else None)

    def _forget(self, future: Future[None]) -> None:
        with self._guard:
            self._turns.pop(future, None)

    def stop(self, wait: float) -> int:
        """Stop the running turns and wait up to ``wait`` seconds for their threads.

        Blocking (run it off the event loop). A stopped turn ends at its next token and
        keeps its partial reply marked ``[stopped]`` (or is undone), which needs the
        memory: the caller closes it only after this returns.

        Returns:
            How many turns were still running after ``wait`` seconds.
        """
        with self._guard:
            self.closing = True
            turns = dict(self._turns)
        for stop in turns.values():
            stop.set()
        _, running = wait_futures(turns, timeout=wait)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        return len(running)


def create_app(
    settings: Settings | None = None,
    *,
    service: ApiService | None = None,
    model: BaseChatModel | None = None,
    resources: ExitStack | None = None,
) -> FastAPI:
    """The API as a FastAPI app.

    Args:
        settings: The assistant's settings; None reads them at start-up (the dev server).
        service: A ready back end (tests, ``assistant serve``); None opens the configured
            memory at start-up and closes it at shutdown.
        model: A chat model instead of the configured one (tests, benchmarks).
        resources: What ``service`` holds open (its memory), handed over: closed at
            shutdown as the memory the app opens itself is. ``assistant serve`` opens the
            memory before the server starts, so a store that cannot be used is a one-line
            error, not a traceback from the server's start-up.

    Returns:
        The app; serve it with uvicorn, or mount it (langgraph.json ``http.app``).
    """
    runtime = _Runtime(settings or (service.settings if service else None), service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stack = resources if resources is not None else ExitStack()
        service = runtime.service
        if service is None:
            # Off the event loop: opening Redis or SQLite blocks (the dev server flags it).
            service = await asyncio.to_thread(_open_service, runtime, stack, model)
        runtime.start(service)
        try:
            yield
        finally:
            # Stop the turns still running and let them write their end (the partial reply,
            # or the undo) before the memory closes under them.
            left = await asyncio.to_thread(runtime.stop, SHUTDOWN_WAIT)
            if left:
                # Closed under them, their end (the stopped reply, the undo) would fail and
                # the user's message stay unanswered; the process's exit closes it instead.
                log.warning(
                    "%d turn(s) still running %.0f s after the stop (not at a reply token "
                    "yet); the memory is left open for them",
                    left,
                    SHUTDOWN_WAIT,
                )
                runtime.left_open = stack  # dropped, the stack's generators would close it
            else:
                await asyncio.to_thread(stack.close)

    app = FastAPI(
        title="Local assistant: OpenAI-compatible API",
        version="1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Outside /v1 every path is a 404, the schema too: it would be the one thing a
        # caller without the key could read.
        openapi_url=None,
    )

    @app.exception_handler(ApiError)
    async def _on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Paths outside /v1 and wrong methods: OpenAI's error object, not FastAPI's
        # {"detail": ...}, so every client parses every error the same way.
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
        message = f"{exc.detail}: {request.method} {request.url.path}"
        headers = dict(exc.headers or {})
        return ApiError(exc.status_code, message, code=code, headers=headers).response()

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        """The model that answers (one; any name in a request reaches it)."""
        service = runtime.get()
        _check_key(request, service.settings)
        return {"object": "list", "data": [_model_card(service.settings)]}

    @app.get("/v1/models/{model_id}")
    async def get_model(request: Request, model_id: str) -> dict[str, Any]:
        """One model's card (404 for a name that is not ours)."""
        service = runtime.get()
        _check_key(request, service.settings)
        if model_id != service.settings.api.model_name:
            raise ApiError(404, f"no model {model_id!r}", param="model", code="model_not_found")
        return _model_card(service.settings)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        """One turn: a ``chat.completion``, or a stream of ``chat.completion.chunk`` events."""
        service = runtime.get()
        settings = service.settings
        key = _check_key(request, settings)
        body = await _read_body(request, settings)
        try:
            chat = parse_request(body)
        except ValidationError as exc:
            first, param, message = _first_error(exc.errors(), _parsed(body))
            # A feature this assistant lacks keeps OpenAI's code for it; a bad value has none.
            code = first["type"] if first["type"] in UNSUPPORTED_CODES else None
            raise ApiError(
                400, f"{param or 'body'}: {message}", param=param or None, code=code
            ) from None
        try:
            turn = to_turn(
                chat,
                request.headers.get("x-thread-id"),
                settings,
                bound_user=key.user if key is not None else None,
            )
        except (RequestError, UserNotAllowedError) as exc:
            raise api_error(exc) from None
        model_name = chat.model or settings.api.model_name
        stop = threading.Event()
        first_event, events = await _begin(runtime, service, turn, stop, request, chat.stream)
        if first_event[0] == "error":
            raise api_error(first_event[1])
        if first_event[0] == "gone":
            return Response(status_code=499)
        headers = {"X-Thread-Id": turn.thread_id} if turn.thread_id else {}
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return StreamingResponse(
                _sse(first_event, events, stop, completion_id, model_name, turn, include_usage),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )
        event = first_event
        while event[0] == "token":
            event = await _next(events, request, stop)
        if event[0] == "error":
            raise api_error(event[1])
        if event[0] == "gone":
            return Response(status_code=499)
        outcome: Outcome = event[1]
        return JSONResponse(_completion(completion_id, model_name, turn, outcome), headers=headers)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def unknown(path: str, request: Request) -> Response:
        """Any other /v1 path: OpenAI's 404 (405 for a known path with another method)."""
        # Matched as routes match (a template such as /v1/models/{model_id} included).
        known = [
            route.path_regex
            for route in app.routes
            if isinstance(route, APIRoute) and route.path != "/v1/{path:path}"
        ]
        if any(pattern.match(f"/v1/{path}") for pattern in known):
            raise ApiError(
                405,
                f"{request.method} is not allowed on /v1/{path}",
                code="method_not_allowed",
            )
        raise ApiError(404, f"unknown endpoint /v1/{path}", code="unknown_url")

    return app


def _open_service(runtime: _Runtime, stack: ExitStack, model: BaseChatModel | None) -> ApiService:
    from graph.settings import get_settings
    from tools.memory import open_memory

    settings = runtime.settings or get_settings()
    runtime.settings = settings
    memory = stack.enter_context(open_memory(settings))
    return ApiService(settings, memory, model=model)


def parse_request(body: bytes) -> ChatRequest:
    r"""The body as a :class:`ChatRequest`; a lone UTF-16 surrogate becomes U+FFFD.

    JavaScript cuts strings in UTF-16 units: a message cut inside an emoji ends in half of
    it, which ``JSON.stringify`` sends as an escape such as ``\ud83d``. That is valid
    JSON, but pydantic's parser refuses it as "unexpected end of hex escape", a 400 that
    names nothing the user did. The half character is read as U+FFFD, the replacement
    character, as any UTF-8 decoder reads a broken one.

    Raises:
        ValidationError: The body is no JSON, or breaks the schema.
    """
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        # Only a broken escape can be a lone surrogate ("unexpected end of hex escape",
        # "lone leading surrogate in hex escape"); any other invalid JSON is the 400 as is.
        if not any(
            error["type"] == "json_invalid" and "escape" in error["msg"] for error in exc.errors()
        ):
            raise
        repaired = _without_lone_surrogates(body)
        if repaired is None:
            raise
    return ChatRequest.model_validate_json(repaired)


def _without_lone_surrogates(body: bytes) -> bytes | None:
    """The body with each lone surrogate replaced; None if it has none (or is no JSON)."""
    try:
        return _replace_lone_surrogates(body)
    except RecursionError:  # nested deeper than Python's parser (or clean()) goes
        return None


def _replace_lone_surrogates(body: bytes) -> bytes | None:
    try:
        data = json.loads(body)
    except ValueError:  # also a body that is no UTF-8
        return None
    found = False

    def clean(value: Any) -> Any:
        nonlocal found
        if isinstance(value, str):
            fixed = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
            found = found or fixed != value
            return fixed
        if isinstance(value, list):
            return [clean(item) for item in value]
        if isinstance(value, dict):
            return {clean(key): clean(item) for key, item in value.items()}
        return value

    cleaned = clean(data)
    return json.dumps(cleaned, ensure_ascii=False).encode() if found else None


def _model_card(settings: Settings) -> dict[str, Any]:
    return {
        "id": settings.api.model_name,
        "object": "model",
        "created": 0,
        "owned_by": "local-assistant",
    }


def _check_key(request: Request, settings: Settings) -> ApiKey | None:
    """Refuse a request without one of the configured keys (none configured: all pass).

    Returns:
        The key the request sent; None when no key is configured.

    Raises:
        ApiError: 401 with OpenAI's ``invalid_api_key`` code.
    """
    keys = settings.api.keys
    if not keys:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = token.strip().encode()
    # Every key is compared, in constant time, so the timing tells nothing about them.
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(given, key.key.get_secret_value().encode()) and found is None:
            found = key
    if scheme.lower() != "bearer" or not given or found is None:
        raise ApiError(
            401,
            "Incorrect or missing API key: send Authorization: Bearer <key>",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


async def _read_body(request: Request, settings: Settings) -> bytes:
    """The request's body, read piece by piece up to ``api.max_body_bytes``.

    A chunked body (no content-length) is counted as it arrives: reading it whole first
    would hold any size in memory before refusing it.

    Raises:
        ApiError: 413 as soon as the body passes the limit (the rest is not read).
    """
    limit = settings.api.max_body_bytes
    too_large = ApiError(
        413, f"the request body is larger than {limit} bytes", code="body_too_large"
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    try:
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise too_large
            parts.append(part)
    except ClientDisconnect:
        # The client hung up before its body was whole (or half-closed its side): no turn,
        # and no "Exception in ASGI application" with a traceback in the server's log.
        raise ApiError(
            499, "the client closed the connection before the body arrived", code="client_closed"
        ) from None
    return b"".join(parts)


Event = tuple[str, Any]


async def _begin(
    runtime: _Runtime,
    service: ApiService,
    turn: Turn,
    stop: threading.Event,
    request: Request,
    tokens: bool,
) -> tuple[Event, asyncio.Queue[Event]]:
    """Start the turn, once its thread is free: its first event, and the queue of the rest.

    A turn on a thread first waits for this server's earlier requests on it
    (:class:`_ThreadGate`, on the loop), then tries the thread's lock without waiting: a
    turn outside this server (the CLI, the page, another replica) may hold it. Then it
    waits :data:`THREAD_POLL` seconds on the loop and queues again, until
    ``api.busy_wait`` has passed, so no worker thread ever waits for a busy thread. While
    it waits, either way, it has a place in the thread's line (at most
    ``api.max_thread_waiters``), which it gives up once its turn holds the thread.

    Returns:
        ("gone", None) as the first event if the client went away while waiting.

    Raises:
        ApiError: 409 when the thread stayed busy (in this server) for ``api.busy_wait``
            seconds, or at once when the thread's line is full; 503 when the server is
            shutting down.
    """
    thread_id = turn.thread_id
    if thread_id is None:  # a throwaway thread: nobody else can know its id
        events = _start(runtime, service, turn, stop, tokens=tokens)
        return await _next(events, request, stop), events
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.settings.api.busy_wait
    gate = runtime.gate
    if gate.busy(thread_id):
        # Another user's thread is a 404 at once, not after waiting for its owner's turn.
        try:
            await asyncio.to_thread(service.check_owner, thread_id, turn.owner)
        except NoSuchThreadError as exc:
            raise api_error(exc) from None

    def release() -> None:  # from the worker thread, when its try is over
        with suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(gate.release, thread_id)

    with gate.line(thread_id) as place:

        def holding() -> None:  # from the worker thread, once the turn holds the thread
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(place.leave)

        if gate.busy(thread_id):
            place.join()  # a turn of this server runs on it, or requests wait for it
        while True:
            left = max(0.0, deadline - loop.time())
            if not await gate.acquire(thread_id, left, request, runtime):
                return ("gone", None), asyncio.Queue()
            try:
                events = _start(
                    runtime, service, turn, stop, tokens=tokens, release=release, holding=holding
                )
            except BaseException:
                gate.release(thread_id)
                raise
            # From here the worker releases the gate, whatever becomes of this request.
            first = await _next(events, request, stop)
            if first[0] != "error" or not _is_busy(first[1]):
                return first, events
            # Held outside this server: wait on the loop, then queue again.
            if loop.time() + THREAD_POLL > deadline or await request.is_disconnected():
                return first, events
            place.join()
            await asyncio.sleep(THREAD_POLL)


def _start(
    runtime: _Runtime,
    service: ApiService,
    turn: Turn,
    stop: threading.Event,
    *,
    tokens: bool,
    release: Callable[[], None] | None = None,
    holding: Callable[[], None] | None = None,
) -> asyncio.Queue[Event]:
    """Run the turn in a worker thread; its events arrive on the returned queue.

    Events: ("token", text) (only with ``tokens``), then ("done", Outcome) or ("error",
    exception), and nothing after those.

    Args:
        runtime: The routes' runtime.
        service: The back end.
        turn: The turn.
        stop: Its stop event.
        tokens: Whether to hand over each token (a stream) or only the end.
        release: For a turn that holds its thread's gate: the thread's lock is tried
            without waiting, and ``release`` is called when the try is over (the turn
            ran, failed, or found the thread busy), or if it never ran (cancelled).
        holding: Called (in the worker) once the turn holds its thread's lock.
    """
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Event] = asyncio.Queue()

    def put(event: Event) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    def work() -> None:
        released = release is None
        try:
            wait = 0.0 if release is not None else None
            for event in service.run(turn, stop, wait=wait, holding=holding):
                if tokens or event[0] != "token":  # a whole reply needs no hand-over per token
                    put(event)
        except BaseException as exc:  # every failure reaches the client, none is lost
            # The gate first: both go through the loop in order, so a request that reads
            # this error (a thread held outside, say) finds the gate free, and one that
            # comes after it is not refused for a turn that is already over.
            if release is not None:
                release()
                released = True
            put(("error", exc))
        finally:
            if not released and release is not None:
                release()

    runtime.submit(work, stop, cancelled=release)
    return events


async def _next(events: asyncio.Queue[Event], request: Request, stop: threading.Event) -> Event:
    """The turn's next event; ("gone", None) when the client disconnected (the turn stops)."""
    while True:
        try:
            # Not ``asyncio.wait_for``: on Python 3.11 it returns the item instead of
            # raising when the request is cancelled just as one arrives (CPython
            # gh-86296), and a cancelled request then went on waiting for its thread.
            async with asyncio.timeout(DISCONNECT_POLL):
                return await events.get()
        except TimeoutError:
            if await request.is_disconnected():
                stop.set()
                return ("gone", None)
        except asyncio.CancelledError:
            stop.set()  # the server cancelled the request (a forced shutdown): stop the turn
            raise


def _chunk(
    completion_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _data(payload: dict[str, Any] | str) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n"


async def _sse(
    first: Event,
    events: asyncio.Queue[Event],
    stop: threading.Event,
    completion_id: str,
    model: str,
    turn: Turn,
    include_usage: bool,
) -> AsyncIterator[str]:
    """The turn as OpenAI's chunk events, ending with ``data: [DONE]``.

    A disconnect cancels this generator (Starlette): ``finally`` sets the stop event, so
    the generation ends at its next token and the model is free.
    """
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        payload = _chunk(completion_id, model, created, delta, finish)
        if include_usage:
            # OpenAI: with include_usage every chunk carries "usage", null but in the last.
            payload["usage"] = None
        return payload

    try:
        yield _data(chunk({"role": "assistant", "content": ""}))
        event = first
        while event[0] == "token":
            yield _data(chunk({"content": event[1]}))
            event = await events.get()
        if event[0] == "error":
            # The status line is sent already: the error goes in the stream, as OpenAI does.
            yield _data(api_error(event[1]).body())
        else:
            outcome: Outcome = event[1]
            note = _withdrawal(outcome)
            if note:
                yield _data(chunk({"content": note}))
            last = chunk({}, outcome.finish_reason)
            last["assistant"] = extension(outcome, turn.thread_id)
            yield _data(last)
            if include_usage:
                usage = chunk({})
                usage["choices"] = []
                usage["usage"] = _usage(outcome)
                yield _data(usage)
        yield _data("[DONE]")
    finally:
        stop.set()


WITHDRAWN = (
    "\n\n[The reply above was withdrawn by the safety filter; the conversation keeps "
    "this instead:]\n\n"
)


def _withdrawal(outcome: Outcome) -> str | None:
    """What a stream adds when the output check took back a reply it had streamed.

    The client has shown the streamed text already; one that knows nothing of our
    ``assistant`` extension (``replaced``) would leave it standing as the answer. In the
    content itself, every client shows that it was withdrawn and what is kept, as the CLI
    says it under the reply.
    """
    if not outcome.streamed.strip() or not safety_verdict(outcome.state)["withdrawn"]:
        return None
    return WITHDRAWN + outcome.reply


def _usage(outcome: Outcome) -> dict[str, int]:
    prompt = int(outcome.state.get("prompt_tokens") or 0)
    # llama.cpp streams one token per chunk: the chunks are the completion's tokens.
    return {
        "prompt_tokens": prompt,
        "completion_tokens": outcome.tokens,
        "total_tokens": prompt + outcome.tokens,
    }


def _completion(completion_id: str, model: str, turn: Turn, outcome: Outcome) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": outcome.reply, "refusal": None},
                "logprobs": None,
                "finish_reason": outcome.finish_reason,
            }
        ],
        "usage": _usage(outcome),
        "assistant": extension(outcome, turn.thread_id),
    }


def iter_lines(text: str) -> Iterator[str]:
    """The ``data:`` payloads of an SSE body (tests and tools)."""
    for line in text.splitlines():
        if line.startswith("data: "):
            yield line[len("data: ") :]
