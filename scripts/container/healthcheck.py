"""The image's HEALTHCHECK: is the role's server answering on its port?

Exit 0 when a TCP connection (redis) or an HTTP GET (the others) to 127.0.0.1:$PORT
succeeds within 5 seconds, else 1. Standard library only. The role is read from PID 1's
command line (tini -- entrypoint.sh ROLE), so one HEALTHCHECK serves every role.
"""

import os
import socket
import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = {"api": 8000, "dev": 8000, "chroma": 8000, "ui": 7860, "redis": 6379}
# A path each HTTP server answers cheaply (any status below 500 counts as alive).
PATHS = {"api": "/", "dev": "/ok", "chroma": "/api/v2/heartbeat", "ui": "/"}


def _role() -> str:
    try:
        with open("/proc/1/cmdline", "rb") as handle:
            args = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return "api"
    for index, arg in enumerate(args):
        if arg.endswith("entrypoint.sh"):
            return args[index + 1] if index + 1 < len(args) and args[index + 1] else "api"
    return "api"


def main() -> int:
    """Probe the server of this container's role; 0 = healthy."""
    role = _role()
    if role not in DEFAULT_PORTS:
        return 0  # a one-off command: nothing to probe
    port = int(os.environ.get("PORT", DEFAULT_PORTS[role]))
    if role == "redis":
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"PING\r\n")
                return 0 if conn.recv(16).startswith(b"+PONG") else 1
        except OSError:
            return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATHS[role]}", timeout=5):
            return 0
    except urllib.error.HTTPError as exc:
        return 0 if exc.code < 500 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
