"""The policy: how runs are submitted, claimed, cancelled and finished, and what threads become.

Routes and the worker loop call this layer; the stores below it only read and write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import Dialect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import jsonable
from broker.errors import UNAVAILABLE, BadRequest, Conflict, Invalid, NotFound, ThreadBusy
from broker.events import EventBus, EventLog, Silence, Subscription, end_message, sse_frame
from broker.graphs import GraphRegistry
from broker.ids import uuid7
from broker.keys import Keys
from broker.models import (
    Assistant,
    CancelAction,
    Claim,
    MultitaskStrategy,
    Run,
    RunOutcome,
    RunRequest,
    RunStatus,
    Thread,
    ThreadResult,
    ThreadStatus,
)
from broker.queue import RunQueue
from broker.runspec import run_row
from broker.state import StateReader, thread_output
from broker.storage import dialect as sql
from broker.storage import runs as run_rows
from broker.storage import threads as thread_rows
from broker.storage.assistants import AssistantStore, system_assistant_id
from broker.storage.hot_path import HotPath, Refusal
from broker.storage.runs import Lease, RunStore
from broker.storage.tables import threads
from broker.storage.threads import ThreadStore, thread_not_found

__all__ = ["BrokerService", "Submission", "ThreadResult"]

log = logging.getLogger(__name__)

NO_RUNS_TO_CANCEL = "No matching runs to cancel. Only pending or running runs can be cancelled."


@dataclass(frozen=True)
class Submission:
    run: Run
    subscription: Subscription | None


@dataclass
class _Cancelled:
    """Runs a cancel ended at once (pending ones) and runs it must signal (running ones)."""

    ended: list[Run]
    signalled: list[tuple[Run, CancelAction]]


class BrokerService:
    def __init__(
        self,
        engine: AsyncEngine,
        queue: RunQueue,
        bus: EventBus,
        log: EventLog,
        keys: Keys,
        graphs: GraphRegistry,
        checkpointer: BaseCheckpointSaver[str],
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.bus = bus
        self.log = log
        self.keys = keys
        self.graphs = graphs
        self.checkpointer = checkpointer
        self.assistants = AssistantStore(engine)
        self.threads = ThreadStore(engine)
        self.runs = RunStore(engine)
        self.hot = HotPath(engine)
        self.state = StateReader(graphs, checkpointer)

    async def start(self) -> None:
        await self.assistants.ensure_system(self.graphs.ids)

    # -- assistants ---------------------------------------------------------------------

    async def resolve_assistant(self, assistant_id: str) -> Assistant:
        """A UUID names an assistant; a registered graph id names its system assistant."""
        if assistant_id in self.graphs:
            return await self.assistants.get(system_assistant_id(assistant_id))
        try:
            uuid = UUID(assistant_id)
        except ValueError:
            raise Invalid(
                f"Invalid assistant: '{assistant_id}'. Must be either: a valid assistant UUID, "
                f"or one of the registered graphs: {self.graphs.ids}"
            ) from None
        return await self.assistants.get(uuid)

    # -- runs: submit -------------------------------------------------------------------

    async def submit(
        self, thread_id: UUID | None, request: RunRequest, *, subscribe: bool
    ) -> Submission:
        """Subscribe to the run's events if asked, insert the run, then wake a worker.

        Subscribing first is what lets the creator's stream miss nothing, and means a
        Redis outage refuses the request before anything is written. Once the row is in
        Postgres the run is accepted: a lost wake-up only delays it (the sweeper pushes it).
        """
        _check_request(thread_id, request)
        assistant = await self.resolve_assistant(request.assistant_id)
        run_id = uuid7()
        subscription = (
            await self.bus.subscribe(self.keys.run_channel(run_id)) if subscribe else None
        )
        try:
            run, cancelled = await self._insert(run_id, thread_id, request, assistant)
        except BaseException:
            if subscription is not None:
                await subscription.close()
            raise
        try:
            await self._announce(cancelled)
            await self._wake(run, request)
        except UNAVAILABLE as exc:
            log.warning(
                "run %s accepted, but Redis is unreachable (%s): the sweeper will start it",
                run_id,
                exc,
            )
        return Submission(run, subscription)

    async def _wake(self, run: Run, request: RunRequest) -> None:
        if request.after_seconds:
            await self.queue.schedule(run.run_id, time.time() + request.after_seconds)
        else:
            await self.queue.push(run.run_id)

    async def _insert(
        self, run_id: UUID, thread_id: UUID | None, request: RunRequest, assistant: Assistant
    ) -> tuple[Run, _Cancelled]:
        temporary = thread_id is None
        tid = thread_id or uuid7()
        tags = {"graph_id": assistant.graph_id, "assistant_id": str(assistant.assistant_id)}
        if temporary and not request.after_seconds:  # the common case, in one statement
            values = run_row(run_id, tid, request, assistant, temporary=True)
            return await self.hot.insert_stateless(values, tags), _Cancelled([], [])
        if not temporary and _cancels_nothing(request):  # the common threaded case
            values = run_row(run_id, tid, request, assistant, temporary=False)
            unless_active = request.multitask_strategy == MultitaskStrategy.REJECT
            made = await self.hot.insert_threaded(values, tags, unless_active=unless_active)
            if made is Refusal.NO_THREAD:
                raise thread_not_found(tid)
            if made is Refusal.BUSY:
                raise ThreadBusy()
            return made, _Cancelled([], [])
        async with self.engine.begin() as conn:
            if temporary:
                await thread_rows.insert_temporary(conn, tid, tags)
                in_flight: list[Run] = []
            else:
                in_flight = await self._claim_thread(conn, tid, request, tags)
            values = run_row(run_id, tid, request, assistant, temporary=temporary)
            if request.after_seconds:
                delay = timedelta(seconds=request.after_seconds)
                values["created_at"] = sql.later(conn.dialect, delay)
            run = await run_rows.insert_run(conn, values)
            cancelled = await self._cancel_for(conn, request.multitask_strategy, in_flight)
        return run, cancelled

    async def _claim_thread(
        self, conn: AsyncConnection, thread_id: UUID, request: RunRequest, tags: dict[str, Any]
    ) -> list[Run]:
        """Marks the thread busy (which locks it); returns its runs in flight when they matter."""
        if request.if_not_exists == "create":
            await conn.execute(_upsert_thread(conn.dialect, thread_id, temporary=False))
        if not await thread_rows.mark_busy(conn, thread_id, tags):
            raise thread_not_found(thread_id)
        if request.multitask_strategy == MultitaskStrategy.ENQUEUE:
            return []  # the new run simply waits its turn
        in_flight = await run_rows.active_runs(conn, thread_id)
        if in_flight and request.multitask_strategy == MultitaskStrategy.REJECT:
            raise ThreadBusy()
        return in_flight

    async def _cancel_for(
        self, conn: AsyncConnection, strategy: MultitaskStrategy, in_flight: list[Run]
    ) -> _Cancelled:
        """The `interrupt` and `rollback` strategies cancel what ran before the new run."""
        if not in_flight or strategy not in (
            MultitaskStrategy.INTERRUPT,
            MultitaskStrategy.ROLLBACK,
        ):
            return _Cancelled([], [])
        return await self._cancel_locked(conn, in_flight, CancelAction(strategy.value))

    async def submit_batch(self, requests: list[RunRequest]) -> list[Run]:
        return [(await self.submit(None, r, subscribe=False)).run for r in requests]

    # -- runs: join and results ---------------------------------------------------------

    async def join(self, run_id: UUID, thread_id: UUID | None) -> tuple[Run, Subscription]:
        """Subscribes to a run's live events; the run is read again once subscribed."""
        run = await self.runs.get(run_id, thread_id)
        if not run.status.active:
            return run, Silence()  # it has ended: nothing live will come
        subscription = await self.bus.subscribe(self.keys.run_channel(run_id))
        try:
            return await self.runs.get(run_id, thread_id), subscription
        except NotFound:
            await subscription.close()
            raise

    async def result(self, run_id: UUID) -> dict[str, Any] | None:
        """The final output of a run that has ended, or None while it is active."""
        try:
            run = await self.runs.get(run_id)
            if run.status.active:
                return None
            thread = await self.threads.get(run.thread_id, include_temporary=True)
        except NotFound:  # a stateless run's thread is deleted when it ends
            return {}
        return thread_output(thread)

    # -- runs: cancel and delete --------------------------------------------------------

    async def cancel(
        self, run_ids: list[UUID], action: CancelAction, *, thread_id: UUID | None = None
    ) -> list[Run]:
        """Cancels runs: pending ones end now, running ones are told to stop."""
        async with self.engine.begin() as conn:
            found = [
                r for r in await run_rows.lock_runs(conn, run_ids, thread_id) if r.status.active
            ]
            if not found:
                raise NotFound(NO_RUNS_TO_CANCEL)
            cancelled = await self._cancel_locked(conn, found, action)
        await self._announce(cancelled)
        return found

    async def cancel_where(self, status: str, action: CancelAction) -> int:
        """Bulk cancel of every pending, running or active ("all") run."""
        async with self.engine.begin() as conn:
            found = await run_rows.lock_active(conn, status=status)
            cancelled = await self._cancel_locked(conn, found, action)
        await self._announce(cancelled)
        return len(found)

    async def _cancel_locked(
        self, conn: AsyncConnection, found: list[Run], action: CancelAction
    ) -> _Cancelled:
        cancelled = _Cancelled([], [])
        for run in found:
            if run.status == RunStatus.RUNNING:
                await run_rows.request_cancel(conn, run.run_id, action.value)
                cancelled.signalled.append((run, action))
                continue
            if action == CancelAction.ROLLBACK:
                await run_rows.delete_run(conn, run.run_id)
            else:
                await run_rows.set_status(conn, run.run_id, RunStatus.INTERRUPTED)
            cancelled.ended.append(run)
        await self._refresh_threads(conn, {r.thread_id for r in cancelled.ended})
        return cancelled

    async def _refresh_threads(self, conn: AsyncConnection, thread_ids: Iterable[UUID]) -> None:
        """A thread whose pending runs were cancelled is busy only if runs remain.

        A stateless run's thread goes with it, as when the run ends normally.
        """
        for thread_id in thread_ids:
            thread = await thread_rows.get_thread(conn, thread_id, lock=True)
            if thread is None:
                continue
            busy = await run_rows.has_active(conn, thread_id)
            if thread.temporary and not busy:
                await thread_rows.delete_temporary(conn, thread_id)
                continue
            status = ThreadStatus.BUSY if busy else _resting_status(thread)
            await thread_rows.set_thread_status(conn, thread_id, status)

    async def _announce(self, cancelled: _Cancelled) -> None:
        """After commit: end the streams of runs that ended, signal workers of the others."""
        for run in cancelled.ended:
            await self.bus.publish(self.keys.run_channel(run.run_id), end_message(_cancel_end()))
        for run, action in cancelled.signalled:
            message = jsonable.dumps({"run_id": str(run.run_id), "action": action.value})
            await self.bus.publish(self.keys.cancel_channel, message)
        for thread_id in {r.thread_id for r in cancelled.ended}:
            await self._wake_next(thread_id)

    async def _wake_next(self, thread_id: UUID) -> None:
        async with self.engine.connect() as conn:
            _, next_id = await run_rows.queue_of(conn, thread_id)  # None while one is running
        if next_id is not None:
            await self.queue.push(next_id)

    async def delete_run(self, thread_id: UUID, run_id: UUID) -> None:
        """Deletes a finished run and the checkpoints it wrote."""
        run = await self.runs.get(run_id, thread_id)
        if run.status.active:
            raise Conflict(f"Run '{run_id}' is still {run.status}; cancel it before deleting it.")
        async with self.engine.begin() as conn:
            await run_rows.delete_run(conn, run_id)
        await self.checkpointer.adelete_for_runs([str(run_id)])

    # -- runs: claim, heartbeat, finish (the worker's side) ------------------------------

    async def claim(self, run_id: UUID, worker_id: str, lease: timedelta) -> Claim | None:
        """Claims the thread's next due run, unless another run on it is running."""
        claimed = await self.hot.claim(run_id, worker_id, lease)
        if claimed is None:
            return None
        run, temporary = claimed
        graph_id = str(run.kwargs.get("config", {}).get("configurable", {}).get("graph_id"))
        return Claim(run=run, attempt=run.attempt, graph_id=graph_id, temporary=temporary)

    async def heartbeat(self, claim: Claim, lease: timedelta) -> Lease:
        return await self.runs.heartbeat(claim.run.run_id, claim.attempt, lease)

    async def finish(self, claim: Claim, outcome: RunOutcome, result: ThreadResult) -> bool:
        """Ends the run (fenced) and settles its thread; False if the claim was lost."""
        run_id, attempt, status = claim.run.run_id, claim.attempt, outcome.status
        if _leaves_no_thread(claim):
            return await self.hot.finish_stateless(run_id, attempt, status)
        if self.hot.postgres and not claim.temporary:  # the common threaded case, cheaper
            owned, next_id = await self.hot.finish_threaded(run_id, attempt, status, result)
            if not owned:
                return False
        else:
            async with self.engine.begin() as conn:
                if await run_rows.mark_finished(conn, run_id, attempt, status) is None:
                    return False
                next_id = await self._settle_thread(conn, claim, result)
        if next_id is not None:
            await self.queue.push(next_id)
        return True

    async def discard(self, claim: Claim) -> bool:
        """A rolled-back run: its row and its checkpoints go; False if the claim was lost."""
        async with self.engine.begin() as conn:
            if not await run_rows.delete_run(conn, claim.run.run_id, claim.attempt):
                return False
        await self.checkpointer.adelete_for_runs([str(claim.run.run_id)])
        return True

    async def settle(self, claim: Claim, result: ThreadResult) -> None:
        """Settles the thread of a run that `discard` removed."""
        async with self.engine.begin() as conn:
            next_id = await self._settle_thread(conn, claim, result)
        if next_id is not None:
            await self.queue.push(next_id)

    async def _settle_thread(
        self, conn: AsyncConnection, claim: Claim, result: ThreadResult
    ) -> UUID | None:
        """Writes the run's result on its thread; returns the thread's next run to wake."""
        thread_id = claim.run.thread_id
        if _leaves_no_thread(claim):
            await thread_rows.delete_temporary(conn, thread_id)  # its only run ends here
            return None
        if await thread_rows.get_thread(conn, thread_id, lock=True) is None:
            return None
        busy = await run_rows.has_active(conn, thread_id)
        _, next_id = await run_rows.queue_of(conn, thread_id) if busy else (False, None)
        if claim.temporary:
            await thread_rows.keep_thread(conn, thread_id)
        await _record(conn, thread_id, result, busy=busy)
        return next_id

    async def release(self, claim: Claim, *, delay: float = 0.0) -> None:
        """Hands a run back: pending again, resumed by another worker (after `delay` s)."""
        async with self.engine.begin() as conn:
            released = await run_rows.release(conn, claim.run.run_id, claim.attempt)
        if not released:
            return
        if delay:
            await self.queue.schedule(claim.run.run_id, time.time() + delay)
        else:
            await self.queue.push_front(claim.run.run_id)

    # -- recovery -----------------------------------------------------------------------

    async def recover_all(self) -> int:
        """At the start of a single-process broker: every running run is an orphan.

        They go back to pending (resumed first), and every pending run is woken again,
        so nothing left over from a killed process jams the queue.
        """
        async with self.engine.begin() as conn:
            orphans = await run_rows.lock_active(conn, status="running")
            for run in orphans:
                await run_rows.release(conn, run.run_id)
            waiting = await run_rows.lock_active(conn, status="pending")
        await self.queue.push_front(*(r.run_id for r in orphans))
        for run in waiting:
            await self._wake_pending(run)
        return len(orphans) + len(waiting)

    async def _wake_pending(self, run: Run) -> None:
        if run.created_at.timestamp() > time.time():
            await self.queue.schedule(run.run_id, run.created_at.timestamp())
        else:
            await self.queue.push(run.run_id)

    async def sweep(self, max_attempts: int, requeue_after: float) -> str:
        """Recovers what crashed workers and lost wake-ups left behind; one sweeper at a time.

        Runs whose lease expired go back to pending (the next claim is attempt + 1) or,
        past `max_attempts`, end in error. Pending runs nobody claimed are pushed again,
        which also refills the queue after Redis lost it.
        """
        async with self.engine.begin() as conn:
            if not await _sweeper_lock(conn):
                return ""
            expired = await run_rows.lock_expired(conn)
            retry = [r for r in expired if r.attempt < max_attempts]
            failed = [r for r in expired if r.attempt >= max_attempts]
            for run in retry:
                await run_rows.release(conn, run.run_id)
            errors = [await self._fail_abandoned(conn, run, max_attempts) for run in failed]
            stale = await run_rows.touch_stale_pending(conn, timedelta(seconds=requeue_after))
        await self.queue.push_front(*(r.run_id for r in retry))
        await self.queue.push(*stale)
        for run, error in zip(failed, errors, strict=True):
            await self._publish_failure(run, error)
        return _sweep_report(retry, failed, stale)

    async def _fail_abandoned(
        self, conn: AsyncConnection, run: Run, max_attempts: int
    ) -> dict[str, Any]:
        error = {
            "error": "WorkerLost",
            "message": f"Run {run.run_id} lost its worker {run.attempt} times "
            f"(BROKER_MAX_ATTEMPTS={max_attempts}); giving up.",
        }
        await run_rows.fail_run(conn, run.run_id)
        claim = Claim(run, run.attempt, "", temporary=bool(run.kwargs.get("temporary")))
        await self._settle_thread(conn, claim, ThreadResult(ThreadStatus.ERROR, error=error))
        return error

    async def _publish_failure(self, run: Run, error: dict[str, Any]) -> None:
        channel = self.keys.run_channel(run.run_id)
        await self.bus.publish(channel, sse_frame("error", jsonable.dumps(error)))
        output = {"__error__": error}
        await self.bus.publish(channel, end_message({"status": "error", "output": output}))

    # -- threads ------------------------------------------------------------------------

    async def update_state(
        self,
        thread_id: UUID,
        values: Any,
        *,
        as_node: str | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new checkpoint on an idle thread; refused while a run is pending or running.

        The checkpoint is written between two short transactions, never inside one: the
        checkpointer has connections of its own (and SQLite has a single writer).
        """
        async with self.engine.begin() as conn:
            thread = await thread_rows.get_thread(conn, thread_id, lock=True)
            if thread is None or thread.temporary:
                raise thread_rows.thread_not_found(thread_id)
            if await run_rows.active_runs(conn, thread_id):
                raise Conflict(f"Thread '{thread_id}' has a pending or running run.")
        written, result = await self.state.update(
            thread, values, as_node=as_node, checkpoint=checkpoint
        )
        async with self.engine.begin() as conn:
            await thread_rows.get_thread(conn, thread_id, lock=True)
            busy = bool(await run_rows.active_runs(conn, thread_id))  # one came in meanwhile
            await _record(conn, thread_id, result, busy=busy)
        return written

    async def copy_thread(self, thread_id: UUID) -> Thread:
        """A new thread with the same metadata and a copy of every checkpoint."""
        try:
            source = await self.threads.get(thread_id)
        except NotFound:
            raise Conflict(f"Thread '{thread_id}' not found; nothing to copy.") from None
        copy_id = uuid7()
        async with self.engine.begin() as conn:
            await thread_rows.insert_copy(conn, source, copy_id, _resting_status(source))
        await self.checkpointer.acopy_thread(str(thread_id), str(copy_id))
        return await self.threads.get(copy_id)


_SWEEPER_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('langgraph-broker:sweeper'))")


async def _sweeper_lock(conn: AsyncConnection) -> bool:
    """One sweeper at a time across workers (SQLite serves one process: always ours)."""
    if not sql.is_postgres(conn.dialect):
        return True
    return bool((await conn.execute(_SWEEPER_LOCK)).scalar_one())


def _sweep_report(retry: list[Run], failed: list[Run], stale: list[UUID]) -> str:
    parts = []
    if retry:
        parts.append(f"{len(retry)} runs with expired leases re-enqueued")
    if failed:
        parts.append(f"{len(failed)} runs failed after too many attempts")
    if stale:
        parts.append(f"{len(stale)} unclaimed pending runs pushed again")
    return "; ".join(parts)


def _check_request(thread_id: UUID | None, request: RunRequest) -> None:
    if request.config.get("configurable") and request.context:
        raise BadRequest("Cannot specify both configurable and context. Use only one of them.")
    if thread_id is None and request.command and "resume" in request.command:
        raise BadRequest("You must provide a thread_id when resuming.")


async def _record(
    conn: AsyncConnection, thread_id: UUID, result: ThreadResult, *, busy: bool
) -> None:
    """Writes what a run or an edit left on the thread; still busy while runs remain."""
    await thread_rows.set_thread_state(
        conn,
        thread_id,
        status=ThreadStatus.BUSY if busy else result.status,
        values=result.values,
        interrupts=result.interrupts,
        error=result.error,
    )


def _cancels_nothing(request: RunRequest) -> bool:
    """A threaded run that only waits its turn or is refused: no thread to create, no
    earlier run to cancel, due now."""
    return (
        request.multitask_strategy in (MultitaskStrategy.REJECT, MultitaskStrategy.ENQUEUE)
        and request.if_not_exists != "create"
        and not request.after_seconds
    )


def _leaves_no_thread(claim: Claim) -> bool:
    """A stateless run's thread goes when the run ends, unless it asked to keep it."""
    return claim.temporary and claim.run.kwargs.get("on_completion") != "keep"


def _resting_status(thread: Thread) -> ThreadStatus:
    """A thread's status with no run in flight, from what its last run left."""
    if thread.error:
        return ThreadStatus.ERROR
    if thread.interrupts:
        return ThreadStatus.INTERRUPTED
    return ThreadStatus.IDLE


def _cancel_end() -> dict[str, Any]:
    return {"status": RunStatus.INTERRUPTED.value, "output": {}}


def _upsert_thread(dialect: Dialect, thread_id: UUID, *, temporary: bool) -> Any:
    now = sql.now(dialect)
    return (
        sql.insert(dialect, threads)
        .values(
            thread_id=thread_id,
            metadata={},
            temporary=temporary,
            created_at=now,
            updated_at=now,
            state_updated_at=now,
        )
        .on_conflict_do_nothing()
    )
