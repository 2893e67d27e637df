"""Why a running run is being stopped, and the handle that stops it."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any

from broker.models import CancelAction


class StopReason(StrEnum):
    INTERRUPT = "interrupt"  # a user's cancel: keep the checkpoints
    ROLLBACK = "rollback"  # a user's cancel: delete the run and its checkpoints
    LOST = "lost"  # the lease was taken over: this attempt must write nothing more
    HANDOFF = "handoff"  # the worker is shutting down: another worker resumes the run
    RETRY = "retry"  # Postgres or Redis failed under the run: retry it from its checkpoint


class RunControl:
    """The first stop asked of a run wins; asking before it starts stops it at start."""

    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self._task: asyncio.Task[Any] | None = None

    def start(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        if self.reason is not None:
            task.cancel()

    def cancel(self, action: CancelAction) -> None:
        self.stop(StopReason(action.value))

    def stop(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            if self._task is not None:
                self._task.cancel()
