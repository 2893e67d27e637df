"""The ledger on Postgres: every statement prebuilt on the asyncpg driver.

The three writes every run makes fold into one autocommitted statement each (data-
modifying CTEs): a stateless submit (run + its thread), the claim, and a stateless
finish; a threaded finish ends the run and locks its thread in one statement.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Insert, Select, Update, bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import ReturningDelete

from broker.models import Run, RunStatus
from broker.storage.driver import Driver
from broker.storage.ledger import statements as q
from broker.storage.ledger.base import Ledger, Tx, claimed
from broker.storage.ledger.outcomes import Cancelled, Claimed, Delivery, Submit, delivery_params
from broker.storage.ledger.spelling import POSTGRES
from broker.storage.rows import to_run
from broker.storage.runs import head_of, owned
from broker.storage.tables import runs, threads
from broker.storage.threads import thread_not_found

_SWEEPER_TURN = text("SELECT pg_try_advisory_xact_lock(hashtext('langgraph-broker:sweeper'))")


class PostgresLedger(Ledger):
    spelling = POSTGRES

    def __init__(self, engine: AsyncEngine) -> None:
        self.driver = Driver(engine)  # outside a transaction, asyncpg autocommits

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self.driver.connect() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[Tx]:
        async with self.driver.connect() as conn:
            yield conn

    async def _exclusive(self, tx: Tx) -> bool:
        return bool(await tx.fetchval(_SWEEPER_TURN, {}))

    async def submit(self, submit: Submit) -> tuple[Run, Cancelled]:
        if not _plainly_enqueued(submit):
            return await super().submit(submit)
        # Nothing to cancel or refuse: one autocommitted statement, not a transaction of
        # three (BEGIN, mark busy, insert, COMMIT).
        params = {"p_thread_id": submit.row["thread_id"], "p_tags": submit.tags}
        params.update(submit.auth)
        params.update({f"p_{c}": submit.row[c] for c in q.RUN_COLUMNS}, p_delay=submit.delay)
        row = await self.driver.fetchrow(_submit_enqueued(), params)
        if row is None:  # no such ordinary thread, or the auth filter hides it
            raise thread_not_found(submit.row["thread_id"])
        return to_run(row), Cancelled()

    async def _submit_stateless(self, submit: Submit) -> Run:
        params = {f"p_{c}": submit.row[c] for c in q.RUN_COLUMNS}
        params.update(p_tags=submit.tags, p_delay=submit.delay)
        row = await self.driver.fetchrow(_insert_stateless(), params)
        assert row is not None  # an INSERT … RETURNING returns its row or raises
        return to_run(row)

    async def claim(self, run_id: UUID, worker_id: str, lease: timedelta) -> Claimed | None:
        params = {"p_run_id": run_id, "p_worker_id": worker_id, "p_lease": lease}
        row = await self.driver.fetchrow(_claim(), params)
        return None if row is None else claimed(row, bool(row["temporary"]))

    async def _finish_dropping(
        self, run_id: UUID, attempt: int, status: RunStatus, delivery: Delivery | None
    ) -> bool:
        params = {"p_run_id": run_id, "p_attempt": attempt} | delivery_params(delivery)
        return await self.driver.fetchval(_finish_stateless(), params) is not None

    async def _end_and_lock(
        self, tx: Tx, run_id: UUID, attempt: int, status: RunStatus, delivery: Delivery | None
    ) -> UUID | None:
        params = {"p_run_id": run_id, "p_attempt": attempt, "p_status": status.value}
        thread_id: UUID | None = await tx.fetchval(
            _finish_and_lock(), params | delivery_params(delivery)
        )
        return thread_id


def _owned() -> Any:
    return owned(
        bindparam("p_run_id", type_=runs.c.run_id.type),
        bindparam("p_attempt", type_=runs.c.attempt.type),
    )


@functools.cache
def _submit_enqueued() -> Insert:
    """A run queued behind whatever its thread holds (`enqueue`, the default), in one
    statement: the thread marked busy (its row locked, as the transaction would), then
    the run inserted if the thread was there for the caller to see."""
    busy = q.mark_busy(POSTGRES).cte("busy")
    return q.insert_run(POSTGRES, unless_active=False, after=busy).add_cte(busy)


@functools.cache
def _insert_stateless() -> Insert:
    """A stateless run with its own busy, hidden thread, in one statement."""
    thread = q.insert_temporary(POSTGRES).cte("new_thread")
    return q.insert_run(POSTGRES, unless_active=False).add_cte(thread)


@functools.cache
def _claim() -> Update:
    """Locks the run's thread (claims on one thread take turns), finds the thread's head
    run (a running one first, else the oldest due pending one) and starts it if pending.

    After waiting for the thread's lock the CTEs still read the statement's snapshot, so
    the head may be stale; the UPDATE re-checks `status = 'pending'` on the row's latest
    version, so a run another worker started meanwhile is never started twice.
    """
    thread = q.lock_thread_of(POSTGRES).cte("claimed_thread")
    head = head_of(thread.c.thread_id, func.now()).cte("head")
    return (
        update(runs)
        .where(
            runs.c.run_id == head.c.run_id,
            head.c.status == RunStatus.PENDING.value,
            runs.c.status == RunStatus.PENDING.value,
            runs.c.thread_id == thread.c.thread_id,
        )
        .values(**q.starting(POSTGRES))
        .returning(*runs.c, thread.c.temporary)
    )


@functools.cache
def _finish_stateless() -> ReturningDelete[Any]:
    """A stateless run ends: its webhook delivery (`p_hook_…`, if any) goes to the outbox,
    its thread goes, and with it (by cascade) the run."""
    owner = select(runs.c.thread_id).where(_owned()).with_for_update().cte("owner")
    hook = q.delivery_from(POSTGRES, owner).cte("hook")
    return (
        delete(threads)
        .where(threads.c.thread_id == select(owner.c.thread_id).scalar_subquery())
        .returning(threads.c.thread_id)
        .add_cte(hook)
    )


@functools.cache
def _finish_and_lock() -> Select[Any]:
    """Ends the run if the attempt still owns it, writes its webhook delivery (`p_hook_…`,
    if any) to the outbox, then locks its thread: the thread's id."""
    finished = q.set_status(POSTGRES, fenced=True).cte("finished")
    hook = q.delivery_from(POSTGRES, finished).cte("hook")
    locked = (
        select(threads.c.thread_id)
        .where(threads.c.thread_id == finished.c.thread_id)
        .with_for_update()
        .scalar_subquery()
    )
    return select(locked).select_from(finished).add_cte(hook)


def _plainly_enqueued(submit: Submit) -> bool:
    """A run on an existing thread that cancels nothing and refuses nothing."""
    return not (submit.temporary or submit.create_thread or submit.rejects) and (
        submit.cancel_action is None
    )
