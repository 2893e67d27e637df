"""The writes every run makes (submit, claim, finish), in as few round trips as they allow.

Each used to be BEGIN, two or three statements and COMMIT. On Postgres each is now a
single statement (data-modifying CTEs) run in autocommit, built once with bind
parameters and sent on the asyncpg connection (`broker.storage.driver`). SQLite
(`broker dev`, one writer) runs the same rules as a short transaction of the portable
statements.

A run on an existing thread (submit and finish) needs a transaction: its decisions
(another run in flight? the next run to wake?) must read the thread's runs *after*
taking the thread's lock, which under READ COMMITTED only a later statement does (a
statement's CTEs read the snapshot taken before it waited). On Postgres those are
BEGIN, two prebuilt statements and COMMIT on the driver, where they were up to eight
statements through SQLAlchemy.

The rules themselves are the service's; these functions only make them cheap.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Select,
    Text,
    Update,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import ReturningDelete, ReturningInsert, ReturningUpdate

from broker.models import Run, RunStatus, ThreadResult, ThreadStatus
from broker.storage import dialect as sql
from broker.storage import runs as run_rows
from broker.storage import threads as thread_rows
from broker.storage.driver import Driver
from broker.storage.rows import to_run
from broker.storage.tables import runs, threads

_PENDING = RunStatus.PENDING.value
_RUNNING = RunStatus.RUNNING.value
_RUN_COLUMNS = ("run_id", "assistant_id", "status", "metadata", "kwargs", "multitask_strategy")


class Refusal(Enum):
    """Why a run was not inserted on its thread."""

    NO_THREAD = "no_thread"
    BUSY = "busy"  # a run is pending or running there (the `reject` strategy)


class _Refused(Exception):
    """Rolls the transaction back (the thread was marked busy) and says why."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal


class HotPath:
    """A run's writes on one engine: prebuilt statements on the driver on Postgres,
    short transactions of the portable statements on SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = sql.is_postgres(engine.dialect)
        self.driver = Driver(engine)  # outside a transaction, asyncpg autocommits

    async def insert_stateless(self, values: dict[str, Any], tags: Any) -> Run:
        """A stateless run with its own busy, hidden thread (`values` is the run's row)."""
        if not self.postgres:
            async with self.engine.begin() as conn:
                await thread_rows.insert_temporary(conn, values["thread_id"], tags)
                return await run_rows.insert_run(conn, values)
        params = {c: values[c] for c in _RUN_COLUMNS}
        params.update(thread_id=values["thread_id"], tags=tags)
        row = await self.driver.fetchrow(_insert_stateless(), params)
        assert row is not None  # an INSERT … RETURNING returns its row or raises
        return to_run(row)

    async def insert_threaded(
        self, values: dict[str, Any], tags: Any, *, unless_active: bool
    ) -> Run | Refusal:
        """A run on an existing thread, marked busy (which locks it) and tagged with `tags`;
        with `unless_active`, only if no run is pending or running there."""
        try:
            if self.postgres:
                return await self._insert_threaded(values, tags, unless_active)
            return await _insert_threaded_in_transaction(self.engine, values, tags, unless_active)
        except _Refused as refused:
            return refused.refusal

    async def _insert_threaded(self, values: dict[str, Any], tags: Any, unless_active: bool) -> Run:
        thread = {"p_thread_id": values["thread_id"]}
        run = {f"p_{c}": values[c] for c in (*_RUN_COLUMNS, "thread_id")}
        async with self.driver.connect() as conn, conn.transaction():
            if await conn.fetchval(_mark_busy(), thread | {"p_tags": tags}) is None:
                raise _Refused(Refusal.NO_THREAD)
            # A new statement, so a new snapshot: it sees every run committed before the lock.
            row = await conn.fetchrow(_insert_run(unless_active=unless_active), run)
            if row is None:
                raise _Refused(Refusal.BUSY)
            return to_run(row)

    async def claim(
        self, run_id: UUID, worker_id: str, lease: timedelta
    ) -> tuple[Run, bool] | None:
        """Starts the thread of `run_id`'s next due run: (the run, its thread is temporary),
        or None when a run is running on it, nothing is due, or the run is gone."""
        if not self.postgres:
            return await _claim_in_transaction(self.engine, run_id, worker_id, lease)
        params = {"p_run_id": run_id, "p_worker_id": worker_id}
        row = await self.driver.fetchrow(_claim(lease), params)
        return None if row is None else (to_run(row), bool(row["temporary"]))

    async def finish_stateless(self, run_id: UUID, attempt: int, status: RunStatus) -> bool:
        """Ends a stateless run whose thread is not kept; False if `attempt` lost the run.

        The run's row goes with its thread (by cascade): its stream's end message carries
        the final status, and nothing reads it from the table afterwards.
        """
        if not self.postgres:
            async with self.engine.begin() as conn:
                thread_id = await run_rows.mark_finished(conn, run_id, attempt, status)
                if thread_id is None:
                    return False
                await thread_rows.delete_temporary(conn, thread_id)
                return True
        params = {"p_run_id": run_id, "p_attempt": attempt}
        return await self.driver.fetchval(_finish_stateless(), params) is not None

    async def finish_threaded(
        self, run_id: UUID, attempt: int, status: RunStatus, result: ThreadResult
    ) -> tuple[bool, UUID | None]:
        """Postgres only: ends a run on a thread that stays (fenced) and writes `result` on
        the thread, which stays busy while runs remain there. (Whether `attempt` still
        owned the run, the thread's next due run to wake.)"""
        fence = {"p_run_id": run_id, "p_attempt": attempt, "p_status": status.value}
        async with self.driver.connect() as conn, conn.transaction():
            thread_id = await conn.fetchval(_finish_and_lock(), fence)
            if thread_id is None:
                return False, None
            # A new statement, so a new snapshot: the thread's runs as they are under its lock.
            recorded = {
                "p_thread_id": thread_id,
                "p_resting": result.status.value,
                "p_keep_values": result.values is None,  # failed before any step
                "p_values": result.values,
                "p_interrupts": result.interrupts or {},
                "p_error": result.error,
            }
            return True, await conn.fetchval(_record_result(), recorded)


# -- submit: a run on an existing thread ------------------------------------------------


@functools.cache
def _mark_busy() -> ReturningUpdate[Any]:
    thread_id = bindparam("p_thread_id", type_=threads.c.thread_id.type)
    tags = bindparam("p_tags", type_=JSONB)
    return (
        update(threads)
        .where(threads.c.thread_id == thread_id, threads.c.temporary.is_(False))
        .values(
            status=ThreadStatus.BUSY.value,
            metadata=threads.c.metadata.op("||", return_type=JSONB)(tags),
            updated_at=func.now(),
        )
        .returning(threads.c.thread_id)
    )


@functools.cache
def _insert_run(*, unless_active: bool) -> ReturningInsert[Any]:
    names = (*_RUN_COLUMNS, "thread_id")
    row = select(
        *(bindparam(f"p_{c}", type_=runs.c[c].type) for c in names),
        func.now().label("created_at"),
        func.now().label("updated_at"),
    )
    if unless_active:
        row = row.where(~exists(run_rows.active_on(bindparam("p_thread_id"))))
    return runs.insert().from_select([*names, "created_at", "updated_at"], row).returning(runs)


async def _insert_threaded_in_transaction(
    engine: AsyncEngine, values: dict[str, Any], tags: Any, unless_active: bool
) -> Run:
    async with engine.begin() as conn:
        if not await thread_rows.mark_busy(conn, values["thread_id"], tags):
            raise _Refused(Refusal.NO_THREAD)
        if unless_active and await run_rows.has_active(conn, values["thread_id"]):
            raise _Refused(Refusal.BUSY)
        return await run_rows.insert_run(conn, values)


# -- submit: a stateless run and its temporary thread -----------------------------------


@functools.cache
def _insert_stateless() -> ReturningInsert[Any]:
    thread_id = bindparam("thread_id", type_=runs.c.thread_id.type)
    now = func.now()
    thread = (
        threads.insert()
        .values(
            thread_id=thread_id,
            metadata=bindparam("tags", type_=threads.c.metadata.type),
            status=ThreadStatus.BUSY.value,
            temporary=True,
            created_at=now,
            updated_at=now,
            state_updated_at=now,
        )
        .cte("new_thread")
    )
    values: dict[str, Any] = {c: bindparam(c, type_=runs.c[c].type) for c in _RUN_COLUMNS}
    return (
        runs.insert()
        .values(**values, thread_id=thread_id, created_at=now, updated_at=now)
        .add_cte(thread)
        .returning(runs)
    )


# -- claim: the thread's next due run, unless one is running ----------------------------


@functools.cache
def _claim(lease: timedelta) -> Update:
    """Locks the run's thread (claims on one thread take turns), finds the thread's head
    run (a running one first, else the oldest due pending one) and starts it if pending.

    After waiting for the thread's lock the CTEs still read the statement's snapshot, so
    the head may be stale; the UPDATE re-checks `status = 'pending'` on the row's latest
    version, so a run another worker started meanwhile is never started twice.
    """
    thread = (
        select(threads.c.thread_id, threads.c.temporary)
        .join(runs, runs.c.thread_id == threads.c.thread_id)
        .where(runs.c.run_id == bindparam("p_run_id", type_=runs.c.run_id.type))
        .with_for_update(of=threads)
        .cte("claimed_thread")
    )
    head = run_rows.head_of(thread.c.thread_id, func.now()).cte("head")
    return (
        update(runs)
        .where(
            runs.c.run_id == head.c.run_id,
            head.c.status == _PENDING,
            runs.c.status == _PENDING,
            runs.c.thread_id == thread.c.thread_id,
        )
        .values(
            status=_RUNNING,
            attempt=runs.c.attempt + 1,
            lease_until=func.now() + literal(lease),
            worker_id=bindparam("p_worker_id", type_=runs.c.worker_id.type),
            started_at=func.now(),
            updated_at=func.now(),
        )
        .returning(*runs.c, thread.c.temporary)
    )


async def _claim_in_transaction(
    engine: AsyncEngine, run_id: UUID, worker_id: str, lease: timedelta
) -> tuple[Run, bool] | None:
    async with engine.begin() as conn:
        thread = await run_rows.lock_thread_of(conn, run_id)
        if thread is None:
            return None
        thread_id, temporary = thread
        running, next_id = await run_rows.queue_of(conn, thread_id)
        if running or next_id is None:
            return None
        return await run_rows.mark_running(conn, next_id, worker_id, lease), temporary


# -- finish: a stateless run ends, taking its thread (and by cascade itself) along ------


@functools.cache
def _finish_stateless() -> ReturningDelete[Any]:
    claim = run_rows.owned(
        bindparam("p_run_id", type_=runs.c.run_id.type),
        bindparam("p_attempt", type_=runs.c.attempt.type),
    )
    owner = select(runs.c.thread_id).where(claim).with_for_update().scalar_subquery()
    return delete(threads).where(threads.c.thread_id == owner).returning(threads.c.thread_id)


# -- finish: a run on a thread that stays ---------------------------------------------


@functools.cache
def _finish_and_lock() -> Select[Any]:
    """Ends the run if the attempt still owns it, then locks its thread: the thread's id."""
    claim = run_rows.owned(
        bindparam("p_run_id", type_=runs.c.run_id.type),
        bindparam("p_attempt", type_=runs.c.attempt.type),
    )
    finished = (
        update(runs)
        .where(claim)
        .values(
            status=bindparam("p_status", type_=runs.c.status.type),
            lease_until=None,
            updated_at=func.now(),
        )
        .returning(runs.c.thread_id)
        .cte("finished")
    )
    locked = (
        select(threads.c.thread_id)
        .where(threads.c.thread_id == finished.c.thread_id)
        .with_for_update()
        .scalar_subquery()
    )
    return select(locked).select_from(finished)


@functools.cache
def _record_result() -> ReturningUpdate[Any]:
    """The run's result on its thread (busy while runs remain): the next due run, if any."""
    thread_id = bindparam("p_thread_id", type_=threads.c.thread_id.type)
    busy = exists(run_rows.active_on(thread_id))
    head = run_rows.head_of(thread_id, func.now()).subquery("head")
    next_due = select(head.c.run_id).where(head.c.status == _PENDING).scalar_subquery()
    values = bindparam("p_values", type_=threads.c["values"].type)
    return (
        update(threads)
        .where(threads.c.thread_id == thread_id)
        .values(
            status=case((busy, ThreadStatus.BUSY.value), else_=bindparam("p_resting", type_=Text)),
            values=case(
                (bindparam("p_keep_values", type_=Boolean), threads.c["values"]), else_=values
            ),
            interrupts=bindparam("p_interrupts", type_=threads.c.interrupts.type),
            error=bindparam("p_error", type_=threads.c.error.type),
            updated_at=func.now(),
            state_updated_at=func.now(),
        )
        .returning(next_due)
    )
