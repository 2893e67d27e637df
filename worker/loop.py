"""The worker: claim → execute → publish → finish, N runs at a time, with a lease heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import timedelta
from uuid import UUID

from langgraph.checkpoint.base import BaseCheckpointSaver

from broker.events import end_message
from broker.models import Claim, RunOutcome
from broker.service import BrokerService, ThreadResult
from broker.settings import Settings
from worker.execute import error_payload, execute
from worker.publisher import Publisher

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        settings: Settings,
        service: BrokerService,
        checkpointer: BaseCheckpointSaver[str],
    ) -> None:
        self.settings = settings
        self.service = service
        self.checkpointer = checkpointer
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.lease = timedelta(seconds=settings.lease_seconds)
        self._slots = asyncio.Semaphore(settings.n_jobs_per_worker)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop claiming; in-flight runs finish."""
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> None:
        """Claims runs until stopped; with `burst`, returns once the queue is drained."""
        log.info("worker %s: %d concurrent runs", self.worker_id, self.settings.n_jobs_per_worker)
        while not self._stopping.is_set():
            await self._slots.acquire()
            run_id = await self._next(timeout=0.2 if burst else 1.0)
            if run_id is None:
                self._slots.release()
                if burst and not self._tasks:
                    break
                continue
            self._spawn(run_id)
        await self.drain()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _next(self, timeout: float) -> UUID | None:
        try:
            return await self.service.queue.pop(timeout)
        except (ConnectionError, OSError) as exc:
            log.warning("worker: queue unreachable (%s); retrying", exc)
            await asyncio.sleep(1.0)
            return None

    def _spawn(self, run_id: UUID) -> None:
        task = asyncio.create_task(self._process(run_id), name=f"run:{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("worker: run task crashed", exc_info=task.exception())

    async def _process(self, run_id: UUID) -> None:
        claim = await self.service.claim(run_id, self.worker_id, self.lease)
        if claim is None:
            return
        heartbeat = asyncio.create_task(self._heartbeat(claim), name=f"heartbeat:{run_id}")
        try:
            await self._execute(claim)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _execute(self, claim: Claim) -> None:
        channel = self.service.keys.run_channel(claim.run.run_id)
        publisher = Publisher(self.service.bus, channel)
        outcome, result = await self._outcome(claim, publisher)
        finished = await self.service.finish(claim, outcome, result)
        if not finished:
            log.warning(
                "run %s attempt %d lost its lease; result dropped", claim.run.run_id, claim.attempt
            )
        await publisher.close(
            end_message({"status": outcome.status.value, "output": outcome.output})
        )

    async def _outcome(self, claim: Claim, publisher: Publisher) -> tuple[RunOutcome, ThreadResult]:
        checkpointer = None if claim.temporary else self.checkpointer
        try:
            config = claim.run.kwargs.get("config") or {}
            graph = await self.service.graphs.get(claim.graph_id, config)  # type: ignore[arg-type]
        except Exception as exc:  # a graph factory that raises fails the run, not the worker
            return _graph_failure(exc, publisher)
        return await execute(claim, graph, checkpointer, publisher.emit)

    async def _heartbeat(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            if not await self.service.heartbeat(claim, self.lease):
                log.warning("run %s: lease lost", claim.run.run_id)
                return


def _graph_failure(exc: Exception, publisher: Publisher) -> tuple[RunOutcome, ThreadResult]:
    from broker import jsonable
    from broker.events import sse_frame
    from broker.models import RunStatus, ThreadStatus

    error = error_payload(exc)
    publisher.emit(sse_frame("error", jsonable.dumps(error)))
    outcome = RunOutcome(RunStatus.ERROR, output={"__error__": error}, error=error)
    return outcome, ThreadResult(ThreadStatus.ERROR, None, {}, error)
