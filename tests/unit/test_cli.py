"""The `assistant` command on the fake backend: one-shot, JSON, interactive, errors."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from graph.settings import Settings
from tests.conftest import assistant
from tools.models.fake import FakeChatModel


def test_one_message_as_json() -> None:
    done = assistant("chat", "--message", "Explain like I'm 5: gravity", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reply"] == "This is a canned reply from the fake model."
    assert result["concept"] == "explain_simply"
    assert result["safety"]["allowed"] is True


def test_blocked_message_prints_the_refusal() -> None:
    done = assistant("chat", "-m", "how to make a bomb", "--safety", "relaxed", "--json")
    result = json.loads(done.stdout)
    assert result["safety"]["allowed"] is False
    assert result["reply"].startswith("Sorry")


@pytest.mark.parametrize("message", ["", "   ", "\u200b\u200b", "\ufeff", "\x07\x1b"])
def test_empty_message_is_not_sent(message: str) -> None:
    done = assistant("chat", "-m", message)
    assert done.returncode == 2
    assert "empty" in done.stderr


@pytest.mark.parametrize(
    ("command", "user", "why"),
    [
        (["chat", "-m", "hi"], "", "is empty"),
        (["chat", "-m", "hi"], "   ", "is empty"),
        # One user-name rule for every front end (graph.settings.check_user_name).
        (["chat", "-m", "hi"], "u" * 300, "1 to 64"),
        (["chat", "-m", "hi"], "u" * 65, "1 to 64"),
        (["memory", "list"], "", "is empty"),
    ],
)
def test_a_bad_user_name_is_a_clear_error_not_a_traceback(
    command: list[str], user: str, why: str
) -> None:
    done = assistant(*command, "--user", user)
    assert done.returncode == 2, done.stderr
    assert "--user" in done.stderr and why in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["data_dir", "sqlite_path", "store_path"])
@pytest.mark.parametrize("command", [["chat", "-m", "hi"], ["threads", "list"]])
def test_a_memory_folder_that_cannot_be_made_is_a_clear_error(
    tmp_path: Path, where: str, command: list[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    env = {
        "data_dir": {"ASSISTANT_DATA_DIR": str(blocker)},
        "sqlite_path": {"ASSISTANT_MEMORY__SQLITE_PATH": str(blocker / "x.sqlite")},
        "store_path": {"ASSISTANT_LONG_TERM__STORE_PATH": str(blocker / "s.sqlite")},
    }[where]
    done = assistant(*command, **env)
    if where == "store_path" and command[0] == "threads":
        assert done.returncode == 0, done.stderr  # listing threads needs no store
        return
    assert done.returncode == 1, done.stderr
    assert "memory error" in done.stderr and str(blocker) in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_setting_is_a_clear_error_not_a_traceback() -> None:
    done = assistant("chat", "-m", "hi", ASSISTANT_SAFETY__SENSITIVITY_LEVEL="extreme")
    assert done.returncode == 2
    assert "safety.sensitivity_level" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_safety_option_is_rejected() -> None:
    done = assistant("chat", "-m", "hi", "--safety", "extreme")
    assert done.returncode == 2 and "strict, moderate, relaxed" in done.stderr


def test_interactive_session_commands() -> None:
    script = "\n".join(
        [
            "",  # ignored
            "hello",
            "/safety",  # says the level
            "/SAFETY\tStrict",  # any case, any blank
            "this is shit",  # blocked at strict
            "/safety nonsense",
            "/usr/bin is a folder?",  # a message, not a command
            "/ leading slash and a space",  # a message too
            "/thread other",
            "/reset",
            "/help",
            "/quit",
        ]
    )
    done = assistant("chat", "--thread", "cli-test", stdin=script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("canned reply") == 3
    assert "safety level moderate (change it" in done.stdout
    assert "Sorry, I can't help" in done.stdout
    assert "unknown safety level 'nonsense'" in done.stderr
    assert "unknown command" not in done.stderr
    assert "thread other" in done.stdout
    assert "/thread ID" in done.stdout


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    done = assistant(
        "chat",
        "-m",
        "hi",
        ASSISTANT_MODEL__BACKEND="llamacpp",
        ASSISTANT_MODEL__GGUF_PATH=str(tmp_path / "nope.gguf"),
    )
    assert done.returncode == 1
    assert "not found" in done.stderr and "Traceback" not in done.stderr


def test_thread_commands_on_the_default_sqlite_store_without_a_warning() -> None:
    # No Redis configured: a fresh machine starts on SQLite, and says nothing about Redis.
    first = assistant("chat", "--thread", "ada", "-m", "I am Ada.", "--json")
    assert first.returncode == 0, first.stderr
    assert "WARNING" not in first.stderr and "Redis" not in first.stderr, first.stderr
    assert json.loads(first.stdout)["messages"] == 2
    assert assistant("threads", "list").stdout.split()[0] == "ada"
    shown = assistant("threads", "show", "ada")
    assert "human> I am Ada." in shown.stdout
    assert assistant("threads", "delete", "ada").returncode == 0
    missing = assistant("threads", "show", "ada")
    assert missing.returncode == 1 and "no thread 'ada'" in missing.stderr
    # Deleting what is not there says so, as `show` does, and deletes none of the rest.
    assistant("chat", "--thread", "bo", "-m", "I am Bo.")
    again = assistant("threads", "delete", "ada", "bo")
    assert again.returncode == 1 and "no thread 'ada'" in again.stderr
    assert "nothing deleted" in again.stderr and "deleted bo" not in again.stdout
    assert assistant("threads", "show", "bo").returncode == 0
    assert assistant("threads", "delete", "bo", "bo").stdout == "deleted bo\n"
    assert assistant("threads", "show", "bo").returncode == 1


def test_a_configured_redis_that_is_down_warns_and_falls_back(dead_redis: str) -> None:
    first = assistant("chat", "--thread", "bo", "-m", "I am Bo.", "--json")
    assert first.returncode == 0, first.stderr
    assert "unreachable" in first.stderr and dead_redis in first.stderr
    assert first.stderr.count("WARNING") == 1, first.stderr  # one warning, not one per part
    second = assistant("chat", "--thread", "bo", "-m", "Who am I?", "--json")
    assert json.loads(second.stdout)["messages"] == 4


def test_thread_commands_say_when_memory_is_off() -> None:
    done = assistant("threads", "list", ASSISTANT_MEMORY__BACKEND="none")
    assert done.returncode == 1 and "memory is off" in done.stderr


def test_unusable_memory_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 64)
    done = assistant(
        "chat",
        "-m",
        "hi",
        ASSISTANT_MEMORY__BACKEND="sqlite",
        ASSISTANT_MEMORY__SQLITE_PATH=str(bad),
    )
    assert done.returncode == 1
    assert "memory error" in done.stderr and "Traceback" not in done.stderr


def test_memory_commands_on_an_empty_store() -> None:
    listed = assistant("memory", "list", "--user", "nobody", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert assistant("memory", "forget", "fact-x", "--user", "nobody").returncode == 1
    cleared = assistant("memory", "clear", "--user", " nobody ", "--yes")
    assert "forgot 0 memories of user nobody" in cleared.stdout  # the name stripped
    bad = assistant("memory", "list", "--kind", "dreams")
    assert bad.returncode == 2 and "unknown kind 'dreams'" in bad.stderr
    off = assistant("memory", "list", ASSISTANT_LONG_TERM__ENABLED="false")
    assert off.returncode == 1 and "long-term memory is off" in off.stderr


@pytest.mark.parametrize(
    "args", [["train", "--resume", "nope"], ["export", "nope"], ["eval", "nope"]]
)
def test_a_missing_fine_tuning_run_is_the_same_usage_error_everywhere(args: list[str]) -> None:
    done = assistant("finetune", *args)
    assert done.returncode == 2, done.stderr
    assert "no fine-tuning runs in" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_a_taken_port_is_a_clear_error_before_any_address_is_announced(command: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = assistant(command, "--port", str(port))
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "http://" not in done.stdout  # nothing announced that does not answer
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("broken", ["not a database", "under a file"])
def test_serve_with_a_store_it_cannot_use_says_why_before_any_address(
    tmp_path: Path, broken: str
) -> None:
    data = tmp_path / "data"
    if broken == "not a database":
        (data / "memory").mkdir(parents=True)
        (data / "memory" / "checkpoints.sqlite").write_bytes(b"\x00garbage" * 4096)
    else:
        (tmp_path / "file").write_text("x")
        data = tmp_path / "file" / "data"
    import socket

    with socket.socket() as probe:  # a port free a moment ago: the store fails first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = assistant("serve", "--port", str(port), ASSISTANT_DATA_DIR=str(data))
    assert done.returncode == 1, done.stderr
    assert "memory error:" in done.stderr and "Traceback" not in done.stderr
    assert "http://" not in done.stdout  # nothing announced that does not answer


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["chat", "--thread", "", "-m", "hi"], "--thread is empty"),
        (["chat", "--thread", "   ", "-m", "hi"], "--thread is empty"),
        (["memory", "search", ""], "the query is empty"),
        (["chat", "--user", " api ", "-m", "hi"], "reserved"),
        (["memory", "list", "--user", "api"], "reserved"),
        (["memory", "search", "  "], "the query is empty"),
        (["graph", "--format", "ascii", "-o", "picture.png"], "writes text, not an image"),
        (["graph", "--format", "mermaid", "-o", "picture.SVG"], "writes text, not an image"),
        (["graph", "-o", "picture.svg"], "writes a PNG image, not .svg"),
        (["graph", "--format", "PNG", "-o", "graph.mmd"], "writes a PNG image, not .mmd"),
        (["finetune", "prepare", "-d", "/no/such/data.jsonl"], "no such dataset file"),
    ],
)
def test_empty_or_mismatched_arguments_are_usage_errors(args: list[str], says: str) -> None:
    done = assistant(*args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("level", ["info", "Debug", " warning "])
def test_the_log_level_may_be_written_in_any_case(level: str) -> None:
    done = assistant("threads", "list", ASSISTANT_LOG_LEVEL=level)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("thread", ["\udcff", "my thread with spaces", "a/b"])
def test_a_thread_id_the_api_would_reject_is_a_clear_cli_error(thread: str) -> None:
    # "\udcff" is what Python makes of the byte 0xff in an argument ($'\\xff').
    done = assistant("chat", "-m", "hello", "--thread", thread)
    assert done.returncode == 2, done.stdout
    assert "--thread: thread id" in done.stderr and "1-128 letters, digits" in done.stderr
    assert "Traceback" not in done.stderr and "codec" not in done.stderr


def test_the_cli_does_not_continue_another_users_thread() -> None:
    assert assistant("chat", "-m", "hi", "--thread", "own1", "--user", "carol").returncode == 0
    done = assistant("chat", "-m", "mine now", "--thread", "own1")  # the machine's user
    assert done.returncode == 1
    assert "thread own1 is another user's" in done.stderr and "Traceback" not in done.stderr
    again = assistant("chat", "-m", "still mine", "--thread", "own1", "--user", "carol")
    assert again.returncode == 0, again.stderr
    shown = assistant("threads", "show", "own1", "--user", "carol")
    assert shown.returncode == 0, shown.stderr
    assert "still mine" in shown.stdout and "mine now" not in shown.stdout


def test_threads_show_and_delete_refuse_another_users_thread() -> None:
    assert (
        assistant("chat", "-m", "carol's secret", "--thread", "own2", "-u", "carol").returncode == 0
    )
    for who in (
        [],
        ["--user", "dave"],
        ["-u", "Carol"],
    ):  # the machine's user, another, a near name
        shown = assistant("threads", "show", "own2", *who)
        assert shown.returncode == 1, (who, shown.stdout)
        assert "thread own2 is another user's: not shown" in shown.stderr
        assert "secret" not in shown.stdout + shown.stderr and "Traceback" not in shown.stderr
        as_json = assistant("threads", "show", "own2", "--json", *who)
        assert as_json.returncode == 1 and as_json.stdout == ""
        deleted = assistant("threads", "delete", "own2", *who)
        assert deleted.returncode == 1, (who, deleted.stdout)
        assert "thread own2 is another user's: not deleted" in deleted.stderr
        assert "deleted own2" not in deleted.stdout
    # Still there, and its owner's to show and delete; a refusal deletes none of the rest.
    assert "carol's secret" in assistant("threads", "show", "own2", "-u", "carol").stdout
    assert assistant("chat", "-m", "mine", "--thread", "own3").returncode == 0
    for order in (["own3", "own2"], ["own2", "own3"]):
        mixed = assistant("threads", "delete", *order)
        assert mixed.returncode == 1 and mixed.stdout == ""
        assert "another user's" in mixed.stderr and "nothing deleted" in mixed.stderr
    assert "mine" in assistant("threads", "show", "own3").stdout
    assert assistant("threads", "delete", "own3").returncode == 0
    done = assistant("threads", "delete", "own2", "-u", "carol")
    assert done.returncode == 0 and "deleted own2" in done.stdout
    assert assistant("threads", "show", "own2", "-u", "carol").returncode == 1


def test_threads_list_shows_only_the_users_threads() -> None:
    for thread, who in (("l-ada", "ada"), ("l-bob", "bob"), ("l-mine", None)):
        user = ["--user", who] if who else []
        assert assistant("chat", "-m", "hello", "--thread", thread, *user).returncode == 0

    def listed(*who: str) -> list[str]:
        done = assistant("threads", "list", "--json", *who)
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        assert {row["owner"] for row in rows} <= {who[-1].strip() if who else getpass.getuser()}
        return sorted(row["thread_id"] for row in rows)

    assert [t for t in listed("--user", "ada") if t.startswith("l-")] == ["l-ada"]
    assert [t for t in listed("-u", " bob ") if t.startswith("l-")] == ["l-bob"]
    assert [t for t in listed() if t.startswith("l-")] == ["l-mine"]  # the machine's user
    assert listed("--user", "Ada") == [] and listed("--user", "carol") == []
    plain = assistant("threads", "list", "--user", "ada")
    assert plain.stdout.split()[0] == "l-ada" and "of ada" in plain.stderr
    # A bot's user is an owner too (test_the_operator_reads_and_clears_what_the_bots_keep);
    # a ':' in any other shape is still no name.
    assert listed("--user", "telegram:1") == []
    bad = assistant("threads", "list", "--user", "telegram:one")
    assert bad.returncode == 2 and "letters, digits" in bad.stderr


@pytest.mark.parametrize("thread", ["\udcff", "my thread with spaces", "a/b", ""])
def test_threads_show_and_delete_check_the_thread_id_rule(thread: str) -> None:
    assert assistant("chat", "-m", "keep me", "--thread", "kept").returncode == 0
    for command in (["show", thread], ["delete", "kept", thread]):
        done = assistant("threads", *command)
        assert done.returncode == 2, (command, done.stdout)
        assert "thread id" in done.stderr and "1-128 letters, digits" in done.stderr
        assert "Traceback" not in done.stderr and "codec" not in done.stderr
    # A bad id among good ones deletes nothing.
    assert "keep me" in assistant("threads", "show", "kept").stdout

    shown = assistant("threads", "show", "own1")
    assert "mine now" not in shown.stdout


def test_interactive_chat_on_another_users_thread_is_refused_before_any_message() -> None:
    assert (
        assistant("chat", "-m", "I am Ada.", "--thread", "t-ada", "--user", "ada").returncode == 0
    )
    done = assistant("chat", "--thread", "t-ada", stdin="what is my name?\n/quit\n")
    assert done.returncode == 1
    assert "thread t-ada is another user's" in done.stderr and "Traceback" not in done.stderr
    assert "canned reply" not in done.stdout  # nothing was sent
    # In the session, /thread refuses the switch and the messages go on in the current thread.
    script = "/thread t-ada\nhello\n/quit\n"
    inside = assistant("chat", "--thread", "mine", stdin=script)
    assert inside.returncode == 0, inside.stderr
    assert "not switched; still in thread mine" in inside.stderr and "--user" not in inside.stderr
    assert inside.stdout.count("canned reply") == 1
    assert assistant("chat", "--thread", "t-ada", "--user", "ada", stdin="/quit\n").returncode == 0


def test_threads_show_and_delete_give_a_notebooks_thread_to_the_machine_user_only() -> None:
    from graph import build_graph
    from graph.settings import load_settings
    from tools.memory import open_checkpointer

    settings = load_settings(model={"backend": "fake"})
    with open_checkpointer(settings) as saver:  # as the quickstart notebook writes a turn
        build_graph(settings, checkpointer=saver).invoke(
            {"messages": [("user", "My bank PIN is 9931")]},
            {"configurable": {"thread_id": "nb-secret"}},
        )
    shown = assistant("threads", "show", "nb-secret", "--user", "bob")
    assert shown.returncode == 1 and "another user's" in shown.stderr
    assert "9931" not in shown.stdout + shown.stderr
    assert assistant("threads", "delete", "nb-secret", "--user", "bob").returncode == 1
    assert "9931" in assistant("threads", "show", "nb-secret").stdout  # the machine's user


def test_escape_sequences_in_a_thread_do_not_reach_the_terminal() -> None:
    # What a user (through the API or a bot) or a document planted acts on the terminal
    # of whoever prints it: written out, as the listings write them.
    planted = "hello \x1b[2J\x1b]0;PWNED\x07 there"
    chat = assistant(
        "chat", "--thread", "esc", "-m", planted, ASSISTANT_MODEL__FAKE_REPLY="ok \x9b31m red"
    )
    assert chat.returncode == 0, chat.stderr
    assert "\x9b" not in chat.stdout and "\\x9b31m red" in chat.stdout  # the streamed reply
    shown = assistant("threads", "show", "esc")
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "hello \\x1b[2J\\x1b]0;PWNED\\x07 there" in shown.stdout
    as_json = json.loads(assistant("threads", "show", "esc", "--json").stdout)
    assert as_json["messages"][0]["content"] == planted  # the data itself is kept as is


def test_the_operator_reads_and_clears_what_the_bots_keep(
    make_settings: Callable[..., Settings], fake_model: FakeChatModel
) -> None:
    from typer.testing import CliRunner

    import apps.cli.main as cli
    from apps.bots.core import BotCore
    from tools.memory import open_memory

    def assistant(*args: str) -> SimpleNamespace:  # in process: a dozen commands, no start-ups
        done = CliRunner().invoke(cli.app, list(args))
        why = done.stderr + ("" if done.exception is None else repr(done.exception))
        return SimpleNamespace(returncode=done.exit_code, stdout=done.stdout, stderr=why)

    settings = make_settings()
    with open_memory(settings) as memory:
        core = BotCore(settings, memory, busy_wait=0, model=fake_model)
        core.handle("telegram:-1001", "telegram:42", "hello from the group")
        core.handle("slack:T01:C02", "slack:T01:U03", "hello from slack")
    listed = assistant("threads", "list", "--user", "telegram:-1001")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[0] == "telegram:-1001"
    shown = assistant("threads", "show", "slack:T01:C02", "--user", " slack:T01:C02 ")
    assert shown.returncode == 0 and "hello from slack" in shown.stdout, shown.stderr
    # Another owner's thread is refused, bot or not, as for every user.
    other = assistant("threads", "show", "slack:T01:C02", "--user", "telegram:-1001")
    assert other.returncode == 1, other.stderr
    memories = assistant("memory", "list", "--user", "telegram:42", "--json")
    assert memories.returncode == 0, memories.stderr
    assert "hello from the group" in memories.stdout
    deleted = assistant("threads", "delete", "telegram:-1001", "--user", "telegram:-1001")
    assert deleted.returncode == 0, deleted.stderr
    # Chatting as a bot's user stays with the bots; and only the bots' shapes are ids.
    assert assistant("chat", "--user", "telegram:42", "-m", "hi").returncode == 2
    for shape in ("telegram:abc", "slack:t01:c02", "telegram:1:2:3", "irc:42"):
        bad = assistant("threads", "list", "--user", shape)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (shape, bad.stderr)
