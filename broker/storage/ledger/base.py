"""The ledger: every state change of runs and threads, each one method, written once.

A rule is a short sequence of prebuilt statements (`statements`) in one transaction.
The backends say only how a transaction runs (Postgres: on the asyncpg driver; SQLite:
through SQLAlchemy), how the sweeper is made exclusive, and — on Postgres — which of
the hottest rules (stateless submit, claim, finish) fold into a single statement.

Decisions that need a thread's runs (is one in flight? which runs next?) read them in
a statement *after* the one that locked the thread: under READ COMMITTED only a later
statement sees runs committed while we waited for the lock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Executable

from broker.errors import Conflict, NotFound, ThreadBusy
from broker.models import Assistant, CancelAction, Cron, Run, RunStatus, Thread, ThreadResult
from broker.storage.ledger import statements as q
from broker.storage.ledger.outcomes import (
    Cancelled,
    Claimed,
    Delivery,
    DeliveryFor,
    Failure,
    Finished,
    Fired,
    Firing,
    Recovered,
    Released,
    Submit,
    Swept,
)
from broker.storage.ledger.spelling import Spelling
from broker.storage.rows import to_assistant, to_cron, to_run, to_thread
from broker.storage.runs import run_not_found
from broker.storage.threads import thread_not_found
from broker.storage.visibility import Filter, params

NO_RUNS_TO_CANCEL = "No matching runs to cancel. Only pending or running runs can be cancelled."
_ALL = {"p_pending": True, "p_running": True}


class Tx(Protocol):
    """Statements in one transaction (or one autocommitted statement)."""

    async def fetch(self, statement: Executable, params: dict[str, Any]) -> list[Any]: ...

    async def fetchrow(self, statement: Executable, params: dict[str, Any]) -> Any: ...

    async def fetchval(self, statement: Executable, params: dict[str, Any]) -> Any: ...

    async def execute(self, statement: Executable, params: dict[str, Any]) -> None: ...


def _no_delivery(run: Run, status: RunStatus) -> Delivery | None:
    return None


class Ledger(ABC):
    spelling: Spelling
    # The webhook delivery of a run the ledger itself ends (a cancelled pending run);
    # the runtime sets it from langgraph.json's webhooks policy.
    deliveries: DeliveryFor = staticmethod(_no_delivery)

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """BEGIN … COMMIT around the statements inside (ROLLBACK on error)."""

    @abstractmethod
    def statement(self) -> AbstractAsyncContextManager[Tx]:
        """For one statement: autocommitted where the backend can."""

    @abstractmethod
    async def _exclusive(self, tx: Tx) -> bool:
        """Whether this transaction may sweep (one sweeper at a time across workers)."""

    # -- submit ---------------------------------------------------------------------------

    async def submit(self, submit: Submit) -> tuple[Run, Cancelled]:
        """A pending run, with what its multitask strategy cancelled on its thread.

        Raises NotFound without an ordinary thread (unless asked to create it) or one the
        auth filter hides, and ThreadBusy when `reject` finds a run in flight.
        """
        if submit.temporary:
            return await self._submit_stateless(submit), Cancelled()
        async with self.transaction() as tx:
            return await self._submit_threaded(tx, submit)

    async def _submit_threaded(self, tx: Tx, submit: Submit) -> tuple[Run, Cancelled]:
        s = self.spelling
        thread = {"p_thread_id": submit.row["thread_id"]}
        if submit.create_thread:
            await tx.execute(q.create_thread(s), thread | submit.thread_params())
        busy = thread | {"p_tags": submit.tags} | submit.auth
        if await tx.fetchval(q.mark_busy(s), busy) is None:
            raise thread_not_found(submit.row["thread_id"])
        replaced = await self._replaced(tx, submit)
        row = await tx.fetchrow(q.insert_run(s, unless_active=submit.rejects), _run(submit))
        if row is None:
            raise ThreadBusy()
        return to_run(row), await self._cancel_locked(tx, replaced, submit.cancel_action)

    async def _replaced(self, tx: Tx, submit: Submit) -> list[Run]:
        """The runs in flight that `interrupt` and `rollback` cancel."""
        if submit.cancel_action is None:
            return []
        params = _ALL | {"p_thread_id": submit.row["thread_id"]}
        return [
            to_run(r) for r in await tx.fetch(q.lock_active(self.spelling, of_thread=True), params)
        ]

    async def _submit_stateless(self, submit: Submit) -> Run:
        async with self.transaction() as tx:
            return await self._insert_stateless(tx, submit)

    async def _insert_stateless(self, tx: Tx, submit: Submit) -> Run:
        s = self.spelling
        params = {"p_thread_id": submit.row["thread_id"], "p_tags": submit.tags}
        await tx.execute(q.insert_temporary(s), params)
        return to_run(await tx.fetchrow(q.insert_run(s, unless_active=False), _run(submit)))

    # -- crons ----------------------------------------------------------------------------

    async def fire_crons(
        self, limit: int, plan: Callable[[Cron, Assistant, datetime], Firing]
    ) -> list[Fired]:
        """Fires up to `limit` due crons, each exactly once: in one transaction the due
        rows are locked (skipping those another scheduler holds), each one's run is
        submitted as `plan` says and its next tick stored, so a tick is fired by the
        transaction that advances it or, if that one fails, by a later one. A run its
        thread refuses (`reject` with a run in flight, or the thread gone) is skipped."""
        s = self.spelling
        fired: list[Fired] = []
        async with self.statement() as tx:  # autocommitted: no transaction when none is due
            if await tx.fetchval(q.any_due_cron(s), {}) is None:
                return fired
        async with self.transaction() as tx:
            now: datetime = await tx.fetchval(q.clock(s), {})
            for cron in [
                to_cron(r) for r in await tx.fetch(q.lock_due_crons(s), {"p_limit": limit})
            ]:
                row = await tx.fetchrow(q.assistant_by_id(s), {"p_assistant_id": cron.assistant_id})
                firing = plan(cron, to_assistant(row), now)
                advanced = {"p_cron_id": cron.cron_id, "p_next_run_date": firing.next_run_date}
                await tx.execute(q.advance_cron(s), advanced)
                if firing.submit is not None and (run := await self._fire(tx, firing.submit)):
                    fired.append(Fired(cron, *run))
        return fired

    async def _fire(self, tx: Tx, submit: Submit) -> tuple[Run, Cancelled] | None:
        if submit.temporary:
            return await self._insert_stateless(tx, submit), Cancelled()
        try:
            return await self._submit_threaded(tx, submit)
        except (ThreadBusy, NotFound):  # raised before any statement failed: tx goes on
            return None

    # -- the worker's side: claim, heartbeat, finish, hand back -----------------------------

    async def claim(self, run_id: UUID, worker_id: str, lease: timedelta) -> Claimed | None:
        """Starts the next due run of `run_id`'s thread, unless one is running there."""
        s = self.spelling
        async with self.transaction() as tx:
            thread = await tx.fetchrow(q.lock_thread_of(s), {"p_run_id": run_id})
            if thread is None:
                return None
            head = await tx.fetchrow(q.head(s), {"p_thread_id": thread["thread_id"]})
            if head is None or head["status"] != RunStatus.PENDING.value:
                return None
            params = {"p_run_id": head["run_id"], "p_worker_id": worker_id, "p_lease": lease}
            row = await tx.fetchrow(q.start(s), params)
        return None if row is None else claimed(row, bool(thread["temporary"]))

    async def heartbeat(
        self, run_id: UUID, attempt: int, lease: timedelta
    ) -> tuple[bool, str | None]:
        """Renews the lease: (still owned, a cancel asked of the run since)."""
        params = {"p_run_id": run_id, "p_attempt": attempt, "p_lease": lease}
        async with self.statement() as tx:
            row = await tx.fetchrow(q.heartbeat(self.spelling), params)
        return (False, None) if row is None else (True, row["cancel_action"])

    async def finish(
        self,
        run_id: UUID,
        attempt: int,
        status: RunStatus,
        result: ThreadResult,
        *,
        drop_thread: bool,
        delivery: Delivery | None = None,
    ) -> Finished:
        """Ends the run if `attempt` still owns it and writes `result` on its thread (or
        drops a stateless run's thread, and with it the run); its webhook `delivery` goes
        to the outbox in the same transaction."""
        if drop_thread:
            return Finished(await self._finish_dropping(run_id, attempt, status, delivery))
        async with self.transaction() as tx:
            thread_id = await self._end_and_lock(tx, run_id, attempt, status, delivery)
            if thread_id is None:
                return Finished(False)
            return Finished(
                True, await tx.fetchval(q.record(self.spelling), _recorded(thread_id, result))
            )

    async def _finish_dropping(
        self, run_id: UUID, attempt: int, status: RunStatus, delivery: Delivery | None
    ) -> bool:
        async with self.transaction() as tx:
            params = {"p_run_id": run_id, "p_attempt": attempt, "p_status": status.value}
            thread_id = await tx.fetchval(q.set_status(self.spelling, fenced=True), params)
            if thread_id is None:
                return False
            await self._deliver(tx, delivery)
            await tx.execute(q.delete_thread(self.spelling), {"p_thread_id": thread_id})
            return True

    async def _end_and_lock(
        self, tx: Tx, run_id: UUID, attempt: int, status: RunStatus, delivery: Delivery | None
    ) -> UUID | None:
        """Ends the run if `attempt` owns it (its delivery to the outbox), then locks its
        thread: the thread's id."""
        params = {"p_run_id": run_id, "p_attempt": attempt, "p_status": status.value}
        thread_id: UUID | None = await tx.fetchval(q.set_status(self.spelling, fenced=True), params)
        if thread_id is not None:
            await self._deliver(tx, delivery)
            await tx.fetchrow(q.lock_thread(self.spelling), {"p_thread_id": thread_id})
        return thread_id

    async def _deliver(self, tx: Tx, delivery: Delivery | None) -> None:
        """A webhook delivery into the outbox, in the transaction that ends its run."""
        if delivery is not None:
            await tx.execute(q.enqueue_delivery(self.spelling), delivery.params())

    async def discard(self, run_id: UUID, attempt: int) -> bool:
        """A rolled-back run's row goes (if `attempt` still owns it)."""
        params = {"p_run_id": run_id, "p_attempt": attempt}
        async with self.statement() as tx:
            return await tx.fetchval(q.delete_run(self.spelling, fenced=True), params) is not None

    async def settle(
        self, thread_id: UUID, result: ThreadResult, *, drop_thread: bool
    ) -> UUID | None:
        """Writes `result` on the thread (busy while runs remain): its next due run."""
        async with self.transaction() as tx:
            return await self._settle(tx, thread_id, result, drop_thread=drop_thread)

    async def _settle(
        self, tx: Tx, thread_id: UUID, result: ThreadResult, *, drop_thread: bool
    ) -> UUID | None:
        if drop_thread:
            await tx.execute(q.delete_thread(self.spelling), {"p_thread_id": thread_id})
            return None
        if await tx.fetchrow(q.lock_thread(self.spelling), {"p_thread_id": thread_id}) is None:
            return None
        next_id: UUID | None = await tx.fetchval(
            q.record(self.spelling), _recorded(thread_id, result)
        )
        return next_id

    async def release(self, run: Run, attempt: int, fail: Failure | None) -> Released:
        """Hands the run back (pending for another worker) or, given `fail`, ends it in
        error with its thread settled; LOST if `attempt` no longer owns it."""
        s = self.spelling
        owner = {"p_run_id": run.run_id, "p_attempt": attempt}
        if fail is None:
            async with self.statement() as tx:
                released = await tx.fetchval(q.release(s, fenced=True), owner)
            return Released.LOST if released is None else Released.RELEASED
        async with self.transaction() as tx:
            ended = owner | {"p_status": RunStatus.ERROR.value}
            if await tx.fetchval(q.set_status(s, fenced=True), ended) is None:
                return Released.LOST
            await self._deliver(tx, fail.delivery)
            await self._settle(tx, run.thread_id, fail.result, drop_thread=fail.drop_thread)
        return Released.FAILED

    # -- cancel ---------------------------------------------------------------------------

    async def cancel(
        self,
        run_ids: list[UUID],
        action: CancelAction,
        thread_id: UUID | None = None,
        filter: Filter | None = None,
    ) -> Cancelled:
        """Pending runs end now, running ones are asked to stop; NotFound if none is active
        (among those on threads the auth filter lets the caller see)."""
        visible = params(filter)
        async with self.transaction() as tx:
            found = []
            for run_id in run_ids:
                row = await tx.fetchrow(q.lock_run(self.spelling), {"p_run_id": run_id} | visible)
                run = None if row is None else to_run(row)
                if run and run.status.active and thread_id in (None, run.thread_id):
                    found.append(run)
            if not found:
                raise NotFound(NO_RUNS_TO_CANCEL)
            return await self._cancel_locked(tx, found, action)

    async def cancel_where(
        self, status: str, action: CancelAction, filter: Filter | None = None
    ) -> Cancelled:
        """Every pending, running or active (`all`) run (on threads `filter` lets one see)."""
        scoped = filter is not None
        statement = q.lock_active(self.spelling, of_thread=False, scoped=scoped)
        async with self.transaction() as tx:
            found = [
                to_run(r) for r in await tx.fetch(statement, _statuses(status) | params(filter))
            ]
            return await self._cancel_locked(tx, found, action)

    async def _cancel_locked(
        self, tx: Tx, found: list[Run], action: CancelAction | None
    ) -> Cancelled:
        cancelled = Cancelled()
        if action is None:
            return cancelled
        s = self.spelling
        for run in found:
            params = {"p_run_id": run.run_id}
            if run.status == RunStatus.RUNNING:
                await tx.execute(q.request_cancel(s), params | {"p_action": action.value})
                cancelled.signalled.append((run, action))
            elif action == CancelAction.ROLLBACK:
                await tx.fetchval(q.delete_run(s, fenced=False), params)
                cancelled.ended.append(run)
            else:
                interrupted = params | {"p_status": RunStatus.INTERRUPTED.value}
                await tx.fetchval(q.set_status(s, fenced=False), interrupted)
                await self._deliver(tx, self.deliveries(run, RunStatus.INTERRUPTED))
                cancelled.ended.append(run)
        for thread_id in dict.fromkeys(r.thread_id for r in cancelled.ended):
            if (next_id := await self._refresh(tx, thread_id)) is not None:
                cancelled.wake.append(next_id)
        return cancelled

    async def _refresh(self, tx: Tx, thread_id: UUID) -> UUID | None:
        """A thread whose pending runs were cancelled: busy only while runs remain (a
        stateless run's thread goes with its run). Its next due run, if any."""
        s = self.spelling
        row = await tx.fetchrow(q.lock_thread(s), {"p_thread_id": thread_id})
        if row is None:
            return None
        thread = to_thread(row)
        params = {"p_thread_id": thread_id, "p_resting": thread.resting_status.value}
        busy = await tx.fetchval(q.refresh_status(s), params)
        if thread.temporary and not busy:
            await tx.execute(q.delete_thread(s), {"p_thread_id": thread_id})
            return None
        head = await tx.fetchrow(q.head(s), {"p_thread_id": thread_id})
        return head["run_id"] if head and head["status"] == RunStatus.PENDING.value else None

    # -- recovery -------------------------------------------------------------------------

    async def sweep(
        self,
        max_attempts: int,
        requeue_after: timedelta,
        fail: Callable[[Run], Failure],
        dead_workers: Sequence[str] = (),
    ) -> Swept | None:
        """Expired leases, and the runs of `dead_workers`, go back to pending, or past
        `max_attempts` end as `fail` says; due pending runs nobody touched for
        `requeue_after` are marked seen. None when another sweeper holds the turn."""
        s = self.spelling
        async with self.transaction() as tx:
            if not await self._exclusive(tx):
                return None
            swept = Swept()
            for run in await self._orphans(tx, dead_workers):
                if run.attempt < max_attempts:
                    await tx.fetchval(q.release(s, fenced=False), {"p_run_id": run.run_id})
                    swept.retry.append(run)
                    continue
                failure = fail(run)
                params = {"p_run_id": run.run_id, "p_status": RunStatus.ERROR.value}
                await tx.fetchval(q.set_status(s, fenced=False), params)
                await self._deliver(tx, failure.delivery)
                next_id = await self._settle(
                    tx, run.thread_id, failure.result, drop_thread=failure.drop_thread
                )
                swept.failed.append((run, failure))
                swept.wake.extend([next_id] if next_id else [])
            stale = await tx.fetch(q.touch_stale(s), {"p_older": -requeue_after})
            swept.stale.extend(r["run_id"] for r in stale)
        return swept

    async def _orphans(self, tx: Tx, dead_workers: Sequence[str]) -> list[Run]:
        """Running runs whose lease expired or whose worker died, each once, locked."""
        s = self.spelling
        found = {r.run_id: r for r in map(to_run, await tx.fetch(q.lock_expired(s), {}))}
        for worker_id in dead_workers:
            rows = await tx.fetch(q.lock_orphans(s), {"p_worker_id": worker_id})
            found.update((r.run_id, r) for r in map(to_run, rows))
        return list(found.values())

    async def pending(self) -> list[tuple[UUID, datetime]]:
        """Every pending run and when it is due: to wake them all after Redis lost them."""
        async with self.statement() as tx:
            rows = await tx.fetch(q.pending(self.spelling), {})
        return [(r["run_id"], r["created_at"]) for r in rows]

    async def recover_all(self) -> Recovered:
        """Every running run back to pending (a single-process broker's orphans), and the
        pending runs that were waiting: each run once."""
        s = self.spelling
        running = {"p_pending": False, "p_running": True}
        async with self.transaction() as tx:
            orphans = [
                to_run(r) for r in await tx.fetch(q.lock_active(s, of_thread=False), running)
            ]
            for run in orphans:
                await tx.fetchval(q.release(s, fenced=False), {"p_run_id": run.run_id})
            pending = {"p_pending": True, "p_running": False}
            rows = await tx.fetch(q.lock_active(s, of_thread=False), pending)
        orphan_ids = {r.run_id for r in orphans}
        waiting = [run for run in map(to_run, rows) if run.run_id not in orphan_ids]
        return Recovered(orphans, waiting)

    # -- threads --------------------------------------------------------------------------

    async def delete_thread(self, thread_id: UUID, filter: Filter | None = None) -> Cancelled:
        """The thread, its runs (every active one reported: its stream must end, a running
        one's worker be told) and its checkpoints; NotFound if `filter` hides it."""
        s = self.spelling
        key = {"p_thread_id": thread_id}
        async with self.transaction() as tx:
            row = await tx.fetchrow(q.lock_visible_thread(s), key | params(filter))
            if row is None or row["temporary"]:
                raise thread_not_found(thread_id)
            active = [
                to_run(r) for r in await tx.fetch(q.lock_active(s, of_thread=True), _ALL | key)
            ]
            await tx.execute(q.delete_thread(s), key)
            for statement in q.delete_checkpoints(s):
                await tx.execute(statement, {"p_key": str(thread_id)})
        running = [r for r in active if r.status == RunStatus.RUNNING]
        return Cancelled(ended=active, signalled=[(r, CancelAction.INTERRUPT) for r in running])

    async def lock_idle(self, thread_id: UUID, filter: Filter | None = None) -> Thread:
        """The ordinary thread (visible through `filter`), checked to have no run pending
        or running."""
        key = {"p_thread_id": thread_id}
        async with self.transaction() as tx:
            row = await tx.fetchrow(q.lock_visible_thread(self.spelling), key | params(filter))
            if row is None or row["temporary"]:
                raise thread_not_found(thread_id)
            if await tx.fetch(q.lock_active(self.spelling, of_thread=True), _ALL | key):
                raise Conflict(f"Thread '{thread_id}' has a pending or running run.")
            return to_thread(row)

    async def copy_thread(
        self,
        source: Thread,
        copy_id: UUID,
        metadata: dict[str, Any] | None = None,
        filter: Filter | None = None,
    ) -> Thread:
        """A copy of `source` (if `filter` still lets the caller see it), with `metadata`
        merged into its metadata."""
        values = {
            "p_thread_id": source.thread_id,
            "p_copy_id": copy_id,
            "p_status": source.resting_status.value,
            "p_metadata": metadata or {},
        }
        async with self.statement() as tx:
            row = await tx.fetchrow(q.copy_thread(self.spelling), values | params(filter))
        if row is None:
            raise thread_not_found(source.thread_id)
        return to_thread(row)

    async def delete_run(self, run_id: UUID, thread_id: UUID, filter: Filter | None = None) -> None:
        """A run that has ended (Conflict while it is active); NotFound if `filter` hides
        its thread."""
        key = {"p_run_id": run_id} | params(filter)
        async with self.transaction() as tx:
            row = await tx.fetchrow(q.lock_run(self.spelling), key)
            run = None if row is None else to_run(row)
            if run is None or run.thread_id != thread_id:
                raise run_not_found(run_id)
            if run.status.active:
                raise Conflict(
                    f"Run '{run_id}' is still {run.status}; cancel it before deleting it."
                )
            await tx.fetchval(q.delete_run(self.spelling, fenced=False), {"p_run_id": run_id})


def _run(submit: Submit) -> dict[str, Any]:
    params = {f"p_{c}": submit.row[c] for c in q.RUN_COLUMNS}
    return params | {"p_delay": submit.delay}


def _recorded(thread_id: UUID, result: ThreadResult) -> dict[str, Any]:
    return {
        "p_thread_id": thread_id,
        "p_resting": result.status.value,
        "p_keep_values": result.values is None,  # failed before any step
        "p_values": result.values,
        "p_interrupts": result.interrupts or {},
        "p_error": result.error,
    }


def _statuses(status: str) -> dict[str, bool]:
    return {
        "p_pending": status in ("all", RunStatus.PENDING.value),
        "p_running": status in ("all", RunStatus.RUNNING.value),
    }


def claimed(row: Mapping[str, Any], temporary: bool) -> Claimed:
    """A started run's row as a claim, with the cancel an earlier attempt was asked for
    (its signal went to that attempt; the worker stops this one at start)."""
    action = row["cancel_action"]
    return Claimed(to_run(row), temporary, CancelAction(action) if action else None)
