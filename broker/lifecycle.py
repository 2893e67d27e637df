"""The worker's side of a run: claim, heartbeat, finish, hand back — and recovery of
what crashed workers and lost wake-ups left behind. The policy is here; the ledger
writes it, the queue and the bus carry it out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel

from broker import metrics
from broker.cancelling import stop_if_cancelled
from broker.crons import CronService
from broker.errors import StoreUnavailable
from broker.events import Subscription
from broker.graphs import GraphRegistry
from broker.messaging import Messaging
from broker.models import Claim, Run, RunOutcome, RunStatus, ThreadResult, ThreadStatus
from broker.outcome import error_payload
from broker.queue import RunQueue
from broker.retention import RetentionSweeper
from broker.storage.ledger import Ledger
from broker.storage.ledger.outcomes import Failure, Released
from broker.storage.runs import Lease, RunStore
from broker.webhooks.payload import Webhooks
from broker.webhooks.sender import WebhookSender

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RunLifecycle:
    ledger: Ledger
    runs: RunStore
    messaging: Messaging  # the queue; the bus and log the worker publishes a run's frames to
    graphs: GraphRegistry
    checkpointer: BaseCheckpointSaver[str]
    max_attempts: int
    crons: CronService  # every worker fires the due ones
    webhooks: Webhooks = field(default_factory=Webhooks)
    sender: WebhookSender | None = None  # sends the webhook outbox
    retention: RetentionSweeper | None = None  # sweeps expired threads

    @property
    def queue(self) -> RunQueue:
        return self.messaging.queue

    # -- what the worker reads ----------------------------------------------------------

    async def next_run(self, timeout: float) -> UUID | None:
        return await self.queue.pop(timeout)

    async def promote_due(self) -> int:
        return await self.queue.promote_due()

    async def fire_crons(self) -> int:
        return await self.crons.fire_due()

    async def graph(self, claim: Claim, config: Any) -> Pregel[Any, Any]:
        return await self.graphs.get(claim.options.graph_id, config, context=claim.options.context)

    async def wrote_checkpoints(self, run_id: UUID) -> bool:
        return await self.runs.wrote_checkpoints(run_id)

    async def cancels(self) -> Subscription:
        return await self.messaging.bus.subscribe(self.messaging.keys.cancel_channel)

    # -- a run's life -------------------------------------------------------------------

    async def claim(self, run_id: UUID, worker_id: str, lease: timedelta) -> Claim | None:
        """Claims the thread's next due run, unless another run on it is running."""
        claimed = await self.ledger.claim(run_id, worker_id, lease)
        if claimed is None:
            return None
        return Claim(
            claimed.run,
            claimed.run.attempt,
            temporary=claimed.temporary,
            cancel_action=claimed.cancel_action,
        )

    async def heartbeat(self, claim: Claim, lease: timedelta) -> Lease:
        owned, action = await self.ledger.heartbeat(claim.run.run_id, claim.attempt, lease)
        return Lease(owned=owned, cancel_action=action)

    async def finish(self, claim: Claim, outcome: RunOutcome, result: ThreadResult) -> bool:
        """Ends the run (fenced) and settles its thread, its webhook delivery written in
        the same transaction; False if the claim was lost."""
        values = result.values
        if values is None and outcome.status == RunStatus.SUCCESS:
            values = outcome.output
        delivery = self.webhooks.delivery(claim.run, outcome.status, values, outcome.error)
        finished = await _once_more(
            lambda: self.ledger.finish(
                claim.run.run_id,
                claim.attempt,
                outcome.status,
                result,
                drop_thread=_drops(claim),
                delivery=delivery,
            )
        )
        await self.messaging.wake(finished.wake)
        return finished.owned

    async def discard(self, claim: Claim) -> bool:
        """A rolled-back run: its row and its checkpoints go; False if the claim was lost."""
        if not await self.ledger.discard(claim.run.run_id, claim.attempt):
            return False
        await self.checkpointer.adelete_for_runs([str(claim.run.run_id)])
        return True

    async def settle(self, claim: Claim, result: ThreadResult) -> None:
        """Settles the thread of a run that `discard` removed."""
        thread_id = claim.run.thread_id
        await self.messaging.wake(
            await self.ledger.settle(thread_id, result, drop_thread=_drops(claim))
        )

    async def release(self, claim: Claim, *, delay: float = 0.0) -> None:
        """Hands a run back: pending again, resumed by another worker (after `delay` s),
        unless it has had its BROKER_MAX_ATTEMPTS: then it ends in error."""
        run = claim.run
        fail = self._failure(run, claim.attempt) if claim.attempt >= self.max_attempts else None
        released = await _once_more(lambda: self.ledger.release(run, claim.attempt, fail))
        if released is Released.FAILED and fail is not None:
            await self.messaging.failed(run, fail.error)
        elif released is Released.RELEASED and delay:
            await self.queue.schedule(run.run_id, time.time() + delay)
        elif released is Released.RELEASED:
            await self.queue.push_front(run.run_id)

    def _failure(self, run: Run, attempts: int) -> Failure:
        error = error_payload(
            "WorkerLost",
            f"Run {run.run_id} lost its worker {attempts} times "
            f"(BROKER_MAX_ATTEMPTS={self.max_attempts}); giving up.",
        )
        drop = run.options.temporary and not run.options.keeps_thread
        delivery = self.webhooks.delivery(run, RunStatus.ERROR, None, error)
        return Failure(ThreadResult(ThreadStatus.ERROR, error=error), drop, error, delivery)

    # -- recovery -----------------------------------------------------------------------

    async def recover_all(self) -> int:
        """At the start of a single-process broker: every running run is an orphan.

        They go back to pending (resumed first), and every pending run is woken again,
        so nothing left over from a killed process jams the queue.
        """
        recovered = await self.ledger.recover_all()
        await self.queue.push_front(*(r.run_id for r in recovered.orphans))
        for run in recovered.waiting:
            if run.created_at.timestamp() > time.time():
                await self.queue.schedule(run.run_id, run.created_at.timestamp())
            else:
                await self.queue.push(run.run_id)
        return len(recovered.orphans) + len(recovered.waiting)

    async def sweep(self, requeue_after: float, dead_workers: Sequence[str] = ()) -> str:
        """Recovers what crashed workers and lost wake-ups left behind; one sweeper at a time.

        Runs whose lease expired, or whose worker died (`dead_workers`, from the liveness
        keys), go back to pending (the next claim is attempt + 1) or, past
        BROKER_MAX_ATTEMPTS, end in error. Pending runs nobody claimed are pushed again,
        which also refills the queue after Redis lost it.
        """
        swept = await self.ledger.sweep(
            self.max_attempts,
            timedelta(seconds=requeue_after),
            lambda run: self._failure(run, run.attempt),
            dead_workers,
        )
        if swept is None:
            return ""
        await self.messaging.liveness.forget(*dead_workers)
        await self.queue.push_front(*(r.run_id for r in swept.retry))
        await self.queue.push(*swept.stale)
        for run, failure in swept.failed:
            await self.messaging.failed(run, failure.error)
        await self.messaging.wake(*swept.wake)
        for outcome, n in (
            ("retried", len(swept.retry)),
            ("failed", len(swept.failed)),
            ("requeued", len(swept.stale)),
        ):
            metrics.SWEEPER_RECOVERED.labels(outcome).inc(n)
        return _sweep_report(len(swept.retry), len(swept.failed), len(swept.stale))

    async def beat(
        self, worker_id: str, ttl: float, requeue_after: float, *, judge: bool = True
    ) -> str:
        """The worker's liveness beat: recovers the runs of workers that died (if it may
        `judge` them), and wakes every pending run again if Redis lost its data (the
        queue with it)."""
        beat = await self.messaging.liveness.beat(worker_id, ttl)
        reports = []
        if beat.reset:
            reports.append(await self.requeue_pending())
        if beat.dead and judge:
            reports.append(await self.sweep(requeue_after, beat.dead))
        return "; ".join(r for r in reports if r)

    async def requeue_pending(self) -> str:
        """Every pending run on the queue again (or the delayed set, if not yet due)."""
        now = time.time()
        waiting = await self.ledger.pending()
        due = [run_id for run_id, at in waiting if at.timestamp() <= now]
        await self.queue.push(*due)
        for run_id, at in waiting:
            if at.timestamp() > now:
                await self.queue.schedule(run_id, at.timestamp())
        metrics.SWEEPER_RECOVERED.labels("requeued").inc(len(waiting))
        return f"Redis lost its data: {len(waiting)} pending runs woken again" if waiting else ""

    async def leave(self, worker_id: str) -> None:
        await self.messaging.liveness.leave(worker_id)

    # -- side work: webhooks, retention -------------------------------------------------

    async def deliver_webhooks(self) -> int:
        """One round of the webhook sender: how many deliveries it tried."""
        return 0 if self.sender is None else await self.sender.deliver_due()

    async def sweep_threads(self) -> str:
        """One retention sweep (if no other process is sweeping): what it removed."""
        swept = None if self.retention is None else await self.retention.sweep()
        return "" if swept is None else swept.report()


async def _once_more(write: Callable[[], Awaitable[T]]) -> T:
    """A worker's fenced write, tried again once if its connection broke under it (the
    pool replaces it): else the run would wait out its lease. Replaying is safe: the
    fence refuses a write that did commit before the connection broke."""
    try:
        return await write()
    except StoreUnavailable as exc:
        stop_if_cancelled(exc)
        log.warning("%r; trying once more on a fresh connection", exc)
        return await write()


def _drops(claim: Claim) -> bool:
    """A stateless run's thread goes when the run ends, unless it asked to keep it."""
    return claim.temporary and not claim.options.keeps_thread


def _sweep_report(retried: int, failed: int, stale: int) -> str:
    parts = []
    if retried:
        parts.append(f"{retried} runs of dead workers or with expired leases re-enqueued")
    if failed:
        parts.append(f"{failed} runs failed after too many attempts")
    if stale:
        parts.append(f"{stale} unclaimed pending runs pushed again")
    return "; ".join(parts)
