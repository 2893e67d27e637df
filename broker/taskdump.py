"""`kill -USR1 <pid>` prints every asyncio task's stack to stderr: a hung process (a
worker that will not stop, a stuck async test under pytest) shows where each coroutine
waits, where py-spy and pytest-timeout show only the idle event loop."""

from __future__ import annotations

import asyncio
import signal
import sys
from types import FrameType


def _dump(signum: int, frame: FrameType | None) -> None:
    loop = asyncio._get_running_loop()
    if loop is None:
        print("taskdump: no event loop is running", file=sys.stderr)
        return
    tasks = asyncio.all_tasks(loop)
    print(f"taskdump: {len(tasks)} tasks", file=sys.stderr)
    for task in tasks:
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(limit=30, file=sys.stderr)
    sys.stderr.flush()


def install() -> None:
    signal.signal(signal.SIGUSR1, _dump)
