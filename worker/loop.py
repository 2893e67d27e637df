"""The worker: claim → execute → publish → finish, N runs at a time.

Side tasks, each named and watched (a crash of one stops the worker loudly): the
cancel listener, the promoter of delayed runs, the sweeper that recovers runs
whose worker died, and the cron scheduler (every worker runs it; broker/crons.py). Each run also has a heartbeat that renews its lease and notices
cancels that missed the pub/sub signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel

from broker import jsonable, metrics
from broker.cancelling import cancelling, stop_if_cancelled
from broker.errors import LeaseLost, StoreUnavailable
from broker.events import Subscription
from broker.lifecycle import RunLifecycle
from broker.memory import Store
from broker.models import CancelAction, Claim, RunOutcome, RunStatus, ThreadResult, ThreadStatus
from broker.outcome import end_marker, error_frame, exception_payload, failed
from broker.settings import Settings
from broker.state import thread_result
from broker.storage.saver import FencingSaver
from worker.control import RunControl, StopReason
from worker.execute import execute, metadata_frame, run_config
from worker.outages import Outages
from worker.publisher import Publisher

log = logging.getLogger(__name__)

Outcome = tuple[RunOutcome, ThreadResult]
# While draining, how often a worker says what it still waits for.
_DRAIN_REPORT_SECONDS = 5.0
# How often a worker publishes its metrics to the board (a SET and a SADD on Redis).
BOARD_SECONDS = 1.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        lifecycle: RunLifecycle,
        checkpointer: FencingSaver,
        hurry: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.lifecycle = lifecycle
        self.checkpointer = checkpointer
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.lease = timedelta(seconds=settings.lease_seconds)
        self._slots = asyncio.Semaphore(settings.n_jobs_per_worker)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[UUID, RunControl] = {}
        self._claimed_at: dict[UUID, float] = {}  # monotonic, for the run duration histogram
        self._stopping = asyncio.Event()
        self._hurry = hurry or asyncio.Event()  # set: hand runs back now, grace or not
        self._beating_since: float | None = None  # since when liveness beats succeed
        self._side_failure: BaseException | None = None
        self.outages = Outages()

    def stop(self) -> None:
        """Stop claiming; in-flight runs get the shutdown grace period to finish."""
        if not self._stopping.is_set():
            log.info("worker %s: stopping; draining %d runs", self.worker_id, len(self._running))
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> None:
        """Claims runs until stopped; with `burst`, returns once the queue is drained."""
        log.info("worker %s: %d concurrent runs", self.worker_id, self.settings.n_jobs_per_worker)
        metrics.SLOTS.set(self.settings.n_jobs_per_worker)
        poll = self.settings.webhook_poll_seconds
        side = [
            self._side_task(self._every(BOARD_SECONDS, self._publish_metrics), "metrics"),
            self._side_task(self._listen_for_cancels, "cancel-listener"),
            self._side_task(self._every(0.5, self.lifecycle.promote_due), "delayed-promoter"),
            self._side_task(self._every(self.settings.sweep_seconds, self._sweep), "sweeper"),
            self._side_task(self._every(self.settings.liveness_seconds, self._beat), "liveness"),
            self._side_task(
                self._every(poll, self.lifecycle.deliver_webhooks, first_after=poll),
                "webhook-sender",
            ),
            self._side_task(
                self._every(self.settings.cron_poll_seconds, self.lifecycle.fire_crons),
                "cron-scheduler",
            ),
        ]
        store = self.lifecycle.graphs.store
        if isinstance(store, Store):  # expired store items: one sweeper at a time, too
            sweep_store = self._every(store.sweep_seconds, lambda: _sweep_store(store))
            side.append(self._side_task(sweep_store, "store-sweeper"))
        if self.lifecycle.retention is not None:
            every = self.lifecycle.retention.policy.sweep_seconds
            sweeping = self._every(every, self._sweep_threads, first_after=every)
            side.append(self._side_task(sweeping, "retention"))
        try:
            await self._recover_predecessor()
            await self._claim_loop(burst)
            await self.drain(self.settings.shutdown_grace_seconds)
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self._leave_board()
            with contextlib.suppress(StoreUnavailable):  # else its key expires on its own
                await self.lifecycle.leave(self.worker_id)
        if self._side_failure is not None:
            raise RuntimeError("worker stopped: a side task crashed") from self._side_failure

    async def _claim_loop(self, burst: bool) -> None:
        while not self._stopping.is_set():
            await self._slots.acquire()
            run_id = await self._next(timeout=0.2 if burst else 1.0)
            if run_id is None:
                self._slots.release()
                if burst and not self._tasks:
                    return
                continue
            self._spawn(run_id)

    async def drain(self, grace: float) -> None:
        """Lets in-flight runs finish for `grace` seconds (saying what it waits for, and
        how long is left, every few seconds), then hands the rest back."""
        if not self._tasks:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        hurried = asyncio.ensure_future(self._hurry.wait())
        finished = asyncio.ensure_future(asyncio.wait(set(self._tasks)))  # cancels no run
        try:
            while not finished.done() and not hurried.done():
                left = deadline - loop.time()
                if left <= 0:
                    break
                log.info(
                    "worker %s: waiting up to %.0fs for %d running runs: %s",
                    self.worker_id,
                    left,
                    len(self._running),
                    ", ".join(str(r) for r in self._running),
                )
                await asyncio.wait(
                    {finished, hurried},
                    timeout=min(left, _DRAIN_REPORT_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            hurried.cancel()
            finished.cancel()
        if self._tasks:
            log.info("worker %s: handing %d runs back", self.worker_id, len(self._tasks))
            for control in self._running.values():
                control.stop(StopReason.HANDOFF)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _next(self, timeout: float) -> UUID | None:
        try:
            run_id = await self.lifecycle.next_run(timeout)
        except StoreUnavailable as exc:
            await asyncio.sleep(self.outages.down("claim", exc))
            return None
        self.outages.up("claim")
        return run_id

    def _spawn(self, run_id: UUID) -> None:
        task = asyncio.create_task(self._process(run_id), name=f"run:{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("worker: %s crashed", task.get_name(), exc_info=task.exception())

    # -- one run ------------------------------------------------------------------------

    async def _process(self, run_id: UUID) -> None:
        claim = await self.lifecycle.claim(run_id, self.worker_id, self.lease)
        if claim is None:
            return
        _count_claim(claim)
        self._claimed_at[claim.run.run_id] = time.monotonic()
        claim = await self._resume_point(claim)
        control = self._running[claim.run.run_id] = RunControl()
        if claim.cancel_action is not None:  # the run was cancelled, then handed back
            control.cancel(claim.cancel_action)
        metrics.SLOTS_BUSY.set(len(self._running))
        heartbeat = asyncio.create_task(self._heartbeat(claim, control), name=f"heartbeat:{run_id}")
        try:
            await self._execute(claim, control)
        finally:
            # A later attempt of this run may have been claimed here meanwhile (this one
            # lost its lease): its entries are its own.
            if self._running.get(claim.run.run_id) is control:
                del self._running[claim.run.run_id]
                self._claimed_at.pop(claim.run.run_id, None)
            metrics.SLOTS_BUSY.set(len(self._running))
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _resume_point(self, claim: Claim) -> Claim:
        """A retried run continues from its last checkpoint instead of starting over."""
        if claim.attempt == 1 or claim.temporary:
            return claim
        if not await self.lifecycle.wrote_checkpoints(claim.run.run_id):
            return claim
        log.info(
            "run %s attempt %d: resuming from its last checkpoint", claim.run.run_id, claim.attempt
        )
        kwargs = dict(claim.options.resumed().wire())
        return dataclasses.replace(claim, run=dataclasses.replace(claim.run, kwargs=kwargs))

    async def _execute(self, claim: Claim, control: RunControl) -> None:
        publisher = self._publisher(claim)
        try:
            config: Any = claim.options.config
            graph = await self.lifecycle.graph(claim, config)
        except Exception as exc:  # a graph factory that raises fails the run, not the worker
            log.error("run %s: its graph failed to build: %r", claim.run.run_id, exc, exc_info=exc)
            await self._conclude(claim, publisher, _graph_failure(claim, publisher, exc))
            return
        execution = asyncio.create_task(
            execute(
                claim, graph, self._checkpointer(claim), publisher.emit, self.lifecycle.graphs.store
            )
        )
        control.start(execution)
        try:
            outcome = await execution
        except LeaseLost:  # a checkpoint write was refused: another attempt owns the run
            await self._stopped(claim, graph, StopReason.LOST, publisher)
            return
        except StoreUnavailable as exc:  # Postgres or Redis, not the graph: retry the run
            log.warning(
                "run %s attempt %d: %r; handing it back", claim.run.run_id, claim.attempt, exc
            )
            await self._stopped(claim, graph, StopReason.RETRY, publisher)
            return
        except asyncio.CancelledError:
            if control.reason is None or cancelling():
                raise
            await self._stopped(claim, graph, control.reason, publisher)
            return
        await self._conclude(claim, publisher, outcome)

    async def _conclude(self, claim: Claim, publisher: Publisher, outcome: Outcome) -> None:
        run_outcome, result = outcome
        # Every frame is out before the run counts as ended: a client that finds it ended
        # (polling on silence) has then been sent everything but the end marker.
        await publisher.drain()
        if not await self.lifecycle.finish(claim, run_outcome, result):
            log.warning("run %s attempt %d lost its lease", claim.run.run_id, claim.attempt)
            metrics.RUNS_HANDED_BACK.labels(StopReason.LOST.value).inc()
            return
        _count_end(run_outcome.status.value, self._claimed_at.get(claim.run.run_id))
        await publisher.end(end_marker(run_outcome.status, run_outcome.output))

    async def _stopped(
        self, claim: Claim, graph: Pregel[Any, Any], reason: StopReason, publisher: Publisher
    ) -> None:
        """After a cancel, a lost lease or a hand-off at shutdown."""
        if reason in (StopReason.LOST, StopReason.HANDOFF, StopReason.RETRY):
            metrics.RUNS_HANDED_BACK.labels(reason.value).inc()
        if reason == StopReason.LOST:
            log.warning("run %s attempt %d: lease lost, stopped", claim.run.run_id, claim.attempt)
            await publisher.close(None)
        elif reason in (StopReason.HANDOFF, StopReason.RETRY):
            await publisher.close(None)  # the next attempt goes on publishing on this channel
            await self._release(claim, delay=0.0 if reason == StopReason.HANDOFF else 1.0)
        elif reason == StopReason.ROLLBACK:
            if await self.lifecycle.discard(claim):
                await self.lifecycle.settle(claim, await self._thread_state(claim, graph))
            await publisher.close(end_marker(RunStatus.INTERRUPTED))
        else:
            result = await self._thread_state(claim, graph)
            outcome = RunOutcome(RunStatus.INTERRUPTED, output=result.values or {})
            await self._conclude(claim, publisher, (outcome, result))

    async def _release(self, claim: Claim, delay: float) -> None:
        try:
            await self.lifecycle.release(claim, delay=delay)
        except StoreUnavailable as exc:  # its lease runs out and the sweeper re-enqueues it
            log.warning(
                "run %s: could not hand it back (%r); the sweeper will", claim.run.run_id, exc
            )

    async def _thread_state(self, claim: Claim, graph: Pregel[Any, Any]) -> ThreadResult:
        checkpointer = self._checkpointer(claim)
        if checkpointer is None:
            return ThreadResult(ThreadStatus.IDLE)
        bound = graph.copy(
            update={"checkpointer": checkpointer, "store": self.lifecycle.graphs.store}
        )
        return thread_result(await bound.aget_state(run_config(claim)))

    def _publisher(self, claim: Claim) -> Publisher:
        run_id = claim.run.run_id
        channel = self.lifecycle.messaging.keys.run_channel(run_id)
        if not claim.options.resumable:
            return Publisher(self.lifecycle.messaging.bus, channel)
        log_key = (self.lifecycle.messaging.log, self.lifecycle.messaging.keys.run_log(run_id))
        return Publisher(
            self.lifecycle.messaging.bus, channel, log_key, self.settings.resumable_grace_seconds
        )

    def _checkpointer(self, claim: Claim) -> BaseCheckpointSaver[str] | None:
        """Stateless runs keep no checkpoints; a threaded run's writes are fenced on its claim."""
        if claim.temporary:
            return None
        return self.checkpointer.fenced(claim.run.run_id, claim.attempt)

    # -- side tasks ---------------------------------------------------------------------

    async def _heartbeat(self, claim: Claim, control: RunControl) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                lease = await self.lifecycle.heartbeat(claim, self.lease)
            except Exception as exc:  # Postgres away: keep trying until the lease runs out
                stop_if_cancelled(exc)  # else `_process`, awaiting it, would wait forever
                log.warning("run %s: heartbeat failed (%r); retrying", claim.run.run_id, exc)
                continue
            if not lease.owned:
                control.stop(StopReason.LOST)
                return
            if lease.cancel_action:
                control.cancel(CancelAction(lease.cancel_action))

    async def _listen_for_cancels(self) -> None:
        while True:
            try:
                subscription = await self.lifecycle.cancels()
            except StoreUnavailable as exc:  # the heartbeat still delivers cancels meanwhile
                stop_if_cancelled(exc)
                await asyncio.sleep(self.outages.down("cancel-listener", exc))
                continue
            self.outages.up("cancel-listener")
            try:
                await self._relay_cancels(subscription)
            finally:
                await subscription.close()

    async def _relay_cancels(self, subscription: Subscription) -> None:
        while True:
            message = await subscription.get(1.0)
            if message is not None:
                self._on_cancel(jsonable.loads(message))

    def _on_cancel(self, request: dict[str, str]) -> None:
        control = self._running.get(UUID(request["run_id"]))
        if control is not None:
            control.cancel(CancelAction(request["action"]))

    async def _publish_metrics(self) -> None:
        """This worker's counters to the board, where the API's /metrics finds them."""
        ttl = 5 * BOARD_SECONDS  # missed five times: the worker is gone
        rendered = metrics.render(metrics.WORKER)
        await self.lifecycle.messaging.board.publish(self.worker_id, rendered, ttl)

    async def _leave_board(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # its entry expires on its own
            await self.lifecycle.messaging.board.leave(self.worker_id)

    async def _sweep(self) -> None:
        report = await self.lifecycle.sweep(self.settings.requeue_seconds)
        if report:
            log.info("sweeper: %s", report)

    async def _beat(self) -> None:
        ttl, now = self.settings.liveness_ttl_seconds, time.monotonic()
        # A missing key means death only if its worker could have beaten meanwhile: not
        # while this one could not reach Redis either, nor before it has beaten for a
        # whole TTL since (after a failover, every key may have expired in the outage).
        judge = self._beating_since is not None and now - self._beating_since >= ttl
        try:
            report = await self.lifecycle.beat(
                self.worker_id, ttl, self.settings.requeue_seconds, judge=judge
            )
        except StoreUnavailable:
            self._beating_since = None
            raise
        if self._beating_since is None:
            self._beating_since = now
        if report:
            log.info("liveness: %s", report)

    async def _recover_predecessor(self) -> None:
        """Runs left under this worker's id by a process that died: a container restarted
        keeps its hostname and pid 1, so its runs would wait out their leases, their
        liveness key kept fresh by the new process. This one claimed none yet."""
        if os.getpid() != 1:  # elsewhere ids do not repeat (and tests share one process)
            return
        try:
            report = await self.lifecycle.sweep(self.settings.requeue_seconds, [self.worker_id])
        except StoreUnavailable:  # the lease and the sweeper still recover them
            return
        if report:
            log.info("sweeper: %s", report)

    async def _sweep_threads(self) -> None:
        report = await self.lifecycle.sweep_threads()
        if report:
            log.info("retention: %s", report)

    def _every(
        self, seconds: float, work: Callable[[], Awaitable[Any]], first_after: float = 0.0
    ) -> Callable[[], Awaitable[None]]:
        """A periodic side task that survives outages of Redis or Postgres, saying so."""

        name = getattr(work, "__name__", str(work))

        async def loop() -> None:
            await asyncio.sleep(first_after)
            while True:
                try:
                    await work()
                except StoreUnavailable as exc:
                    stop_if_cancelled(exc)
                    await asyncio.sleep(self.outages.down(name, exc))
                    continue
                except Exception as exc:
                    stop_if_cancelled(exc)
                    log.warning("worker: %s failed (%r); retrying", name, exc)
                else:
                    self.outages.up(name)
                await asyncio.sleep(seconds)

        return loop

    def _side_task(self, work: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work())
        task.set_name(name)
        task.add_done_callback(self._side_done)
        return task

    def _side_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "worker: side task %s crashed; stopping", task.get_name(), exc_info=task.exception()
        )
        self._side_failure = task.exception()
        self.stop()


def _count_claim(claim: Claim) -> None:
    metrics.RUNS_CLAIMED.inc()
    if claim.attempt == 1:  # a retry's wait would count the earlier attempts too
        waited = (datetime.now(UTC) - claim.run.created_at).total_seconds()
        metrics.QUEUE_WAIT.observe(max(0.0, waited))


def _count_end(status: str, claimed_at: float | None) -> None:
    metrics.RUNS_FINISHED.labels(status).inc()
    if claimed_at is not None:
        metrics.RUN_DURATION.labels(status).observe(time.monotonic() - claimed_at)


def _graph_failure(claim: Claim, publisher: Publisher, exc: Exception) -> Outcome:
    error = exception_payload(exc)
    publisher.emit(metadata_frame(claim))
    publisher.emit(error_frame(error))
    return failed(error), ThreadResult(ThreadStatus.ERROR, None, {}, error)


async def _sweep_store(store: Store) -> None:
    deleted = await store.sweep()
    if deleted:
        log.info("store sweeper: deleted %d expired items", deleted)
