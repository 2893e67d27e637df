"""How the broker reaches workers and listeners: the wake-up queue, the event bus and
log, their keys — and what it tells them once a state change is committed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from broker import jsonable
from broker.board import LocalWorkerBoard, WorkerBoard
from broker.events import EventBus, EventLog
from broker.keys import Keys
from broker.liveness import Liveness, LocalLiveness
from broker.models import Run, RunStatus
from broker.outcome import end_marker, error_frame, failure_end
from broker.queue import RunQueue
from broker.storage.ledger.outcomes import Cancelled


@dataclass(frozen=True)
class Messaging:
    queue: RunQueue
    bus: EventBus
    log: EventLog
    keys: Keys
    # Workers' metrics for the API's /metrics (Redis, or in-process for `broker dev`).
    board: WorkerBoard = field(default_factory=LocalWorkerBoard)
    # Which workers died, and whether Redis lost its data (broker/liveness.py).
    liveness: Liveness = field(default_factory=LocalLiveness)

    async def cancelled(self, cancelled: Cancelled) -> None:
        """Ends the streams of runs that ended, signals the workers of running ones, and
        wakes the runs next on their threads."""
        for run in cancelled.ended:
            await self.bus.publish(
                self.keys.run_channel(run.run_id), end_marker(RunStatus.INTERRUPTED)
            )
        for run, action in cancelled.signalled:
            message = jsonable.dumps({"run_id": str(run.run_id), "action": action.value})
            await self.bus.publish(self.keys.cancel_channel, message)
        await self.wake(*cancelled.wake)

    async def failed(self, run: Run, error: dict[str, Any]) -> None:
        """A run the broker gave up on: its stream gets the error, then its end."""
        channel = self.keys.run_channel(run.run_id)
        await self.bus.publish(channel, error_frame(error))
        await self.bus.publish(channel, failure_end(error))

    async def wake(self, *run_ids: UUID | None) -> None:
        due = [run_id for run_id in run_ids if run_id is not None]
        if due:
            await self.queue.push(*due)
