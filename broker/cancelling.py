"""A cancel must stop the task it was meant for, even when it surfaces as another error.

A task cancelled while a library awaits for it (a SQL statement, a Redis read, a timeout
racing the cancel) can see the cancel come out as that library's error. A loop that
retries on errors would then carry on forever, and whoever awaits it (a worker stopping,
a bus closing) would hang. Such loops call `stop_if_cancelled` in their handlers.
"""

from __future__ import annotations

import asyncio


def cancelling() -> bool:
    """True when the current task itself has been asked to stop (and has not taken it back)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def stop_if_cancelled(exc: BaseException) -> None:
    """Raises CancelledError (from `exc`) if the current task is being cancelled."""
    if cancelling():
        raise asyncio.CancelledError from exc
