"""Show a verbose ``pip wheel -v`` build of llama.cpp as one updating progress line.

Reads pip's output on stdin, writes all of it to a log file, and prints one line, redrawn
in place on a terminal: the percentage of CMake/Ninja steps done (``[N/M]`` lines) and
the elapsed time. Without a terminal (CI logs) it prints a line every 10% instead of
140 step lines. pip's closing ``Successfully ...`` and ``ERROR ...`` lines are shown as
they are; on a failure, read the log.

Usage: pip wheel -v ... 2>&1 | python scripts/build_progress.py LOG [LABEL]
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]")
SHOWN = re.compile(r"^(Successfully|ERROR)")


def main() -> int:
    """Copy stdin to the log and draw the progress line; returns the exit status (0)."""
    log = Path(sys.argv[1])
    label = sys.argv[2] if len(sys.argv) > 2 else "building"
    tty = sys.stdout.isatty()
    started = time.monotonic()
    last_tenth = -1
    drawn = False
    with log.open("w", encoding="utf-8") as sink:
        for line in sys.stdin:
            sink.write(line)
            step = STEP.match(line)
            if step:
                done, total = int(step.group(1)), int(step.group(2))
                percent = 100 * done // max(total, 1)
                elapsed = time.monotonic() - started
                text = f"{label}: {percent:3d}% ({done}/{total} steps, {elapsed / 60:.1f} min)"
                if tty:
                    sys.stdout.write("\r\033[K" + text)
                    sys.stdout.flush()
                    drawn = True
                elif percent // 10 > last_tenth:
                    last_tenth = percent // 10
                    print(text, flush=True)
            elif SHOWN.match(line):
                if drawn:
                    sys.stdout.write("\n")
                    drawn = False
                print(line.rstrip(), flush=True)
    if drawn:
        sys.stdout.write("\n")
    elapsed = time.monotonic() - started
    print(f"{label}: finished in {elapsed / 60:.1f} min (log: {log})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
