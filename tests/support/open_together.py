"""Open the SQLite memory at an agreed moment, as processes started together do.

Used by the test that several processes can open one new SQLite file at once::

    python -m tests.support.open_together --at 1700000000.5 --async

Waits until the wall-clock time ``--at``, opens the checkpointer and the store (the async
checkpointer with ``--async``, as the servers do), writes one checkpoint, and prints
``ok`` or the error.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from langgraph.checkpoint.base import empty_checkpoint

from graph.settings import load_settings
from tools.memory import open_memory
from tools.memory.checkpointers import aopen_checkpointer


def _config(name: str) -> Any:
    return {"configurable": {"thread_id": name, "checkpoint_ns": ""}}


async def _open_async(name: str) -> None:
    async with aopen_checkpointer(load_settings()) as saver:
        assert saver is not None
        await saver.aput(_config(name), empty_checkpoint(), {}, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", type=float, required=True, help="time.time() to start at")
    parser.add_argument("--name", required=True, help="the thread this process writes")
    parser.add_argument("--async", dest="use_async", action="store_true")
    args = parser.parse_args()
    time.sleep(max(0.0, args.at - time.time()))
    try:
        if args.use_async:
            asyncio.run(_open_async(args.name))
        else:
            with open_memory(load_settings()) as memory:
                assert memory.saver is not None and memory.store is not None
                memory.saver.put(_config(args.name), empty_checkpoint(), {}, {})
    except Exception as exc:  # the test wants to see whatever went wrong
        print(f"error: {type(exc).__name__}: {exc}", flush=True)
        raise SystemExit(1) from None
    print("ok", flush=True)


if __name__ == "__main__":
    main()
