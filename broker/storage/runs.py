"""Runs in Postgres: insert, read, and the fenced claim/heartbeat/finish a worker does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.errors import NotFound
from broker.models import Run, RunStatus
from broker.storage import dialect as sql
from broker.storage.driver import Prebuilt
from broker.storage.rows import to_run
from broker.storage.tables import checkpoints, runs, threads

ACTIVE = (RunStatus.PENDING.value, RunStatus.RUNNING.value)


def run_not_found(run_id: UUID) -> NotFound:
    return NotFound(f"Run '{run_id}' not found.")


# Every join, result and status request reads a run by id: prebuilt (storage.driver).
_BY_ID = select(runs).where(runs.c.run_id == bindparam("p_run_id", type_=runs.c.run_id.type))
_BY_ID_ON_THREAD = _BY_ID.where(
    runs.c.thread_id == bindparam("p_thread_id", type_=runs.c.thread_id.type)
)


class RunStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._prebuilt = Prebuilt(engine)

    async def get(self, run_id: UUID, thread_id: UUID | None = None) -> Run:
        if thread_id is None:
            row = await self._prebuilt.fetchrow(_BY_ID, {"p_run_id": run_id})
        else:
            params = {"p_run_id": run_id, "p_thread_id": thread_id}
            row = await self._prebuilt.fetchrow(_BY_ID_ON_THREAD, params)
        if row is None:
            raise run_not_found(run_id)
        return to_run(row)

    async def list(
        self, thread_id: UUID, *, limit: int = 10, offset: int = 0, status: str | None = None
    ) -> list[Run]:
        query = select(runs).where(runs.c.thread_id == thread_id)
        if status:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.created_at.desc()).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            return [to_run(r) for r in (await conn.execute(query)).all()]

    async def wrote_checkpoints(self, run_id: UUID) -> bool:
        query = select(checkpoints.c.checkpoint_id).where(checkpoints.c.run_id == str(run_id))
        async with self._engine.connect() as conn:
            return (await conn.execute(query.limit(1))).first() is not None

    async def heartbeat(self, run_id: UUID, attempt: int, lease: timedelta) -> Lease:
        """Renews the lease, and reports a cancel asked of the run since."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(runs)
                    .where(owned(run_id, attempt))
                    .values(lease_until=sql.later(conn.dialect, lease))
                    .returning(runs.c.cancel_action)
                )
            ).first()
        return Lease(owned=row is not None, cancel_action=None if row is None else row[0])


@dataclass(frozen=True)
class Lease:
    owned: bool  # False: another attempt took the run over; stop
    cancel_action: str | None


def owned(run_id: Any, attempt: Any) -> Any:
    """The claim test: `attempt` still owns the running run (values or bind parameters)."""
    return and_(
        runs.c.run_id == run_id,
        runs.c.attempt == attempt,
        runs.c.status == RunStatus.RUNNING.value,
    )


async def insert_run(conn: AsyncConnection, values: dict[str, Any]) -> Run:
    now = sql.now(conn.dialect)
    stamped = {"created_at": now, "updated_at": now, **values}
    row = (await conn.execute(runs.insert().values(**stamped).returning(runs))).one()
    return to_run(row)


async def active_runs(conn: AsyncConnection, thread_id: UUID) -> list[Run]:
    query = select(runs).where(runs.c.thread_id == thread_id, runs.c.status.in_(ACTIVE))
    return [to_run(r) for r in (await conn.execute(query.order_by(runs.c.created_at))).all()]


async def mark_running(
    conn: AsyncConnection, run_id: UUID, worker_id: str, lease: timedelta
) -> Run:
    """Starts a new attempt: the bumped attempt is the fencing token."""
    row = (
        await conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(
                status=RunStatus.RUNNING.value,
                attempt=runs.c.attempt + 1,
                lease_until=sql.later(conn.dialect, lease),
                worker_id=worker_id,
                started_at=sql.now(conn.dialect),
                updated_at=sql.now(conn.dialect),
            )
            .returning(runs)
        )
    ).one()
    return to_run(row)


async def mark_finished(
    conn: AsyncConnection, run_id: UUID, attempt: int, status: RunStatus
) -> UUID | None:
    """Ends the run if `attempt` still owns it; returns its thread id, or None if fenced out."""
    row = (
        await conn.execute(
            update(runs)
            .where(owned(run_id, attempt))
            .values(status=status.value, lease_until=None, updated_at=sql.now(conn.dialect))
            .returning(runs.c.thread_id)
        )
    ).first()
    return None if row is None else row[0]


async def lock_runs(
    conn: AsyncConnection, run_ids: list[UUID], thread_id: UUID | None = None
) -> list[Run]:
    query = select(runs).where(runs.c.run_id.in_(run_ids))
    if thread_id is not None:
        query = query.where(runs.c.thread_id == thread_id)
    rows = (await conn.execute(query.order_by(runs.c.created_at).with_for_update())).all()
    return [to_run(r) for r in rows]


async def lock_active(
    conn: AsyncConnection, *, status: str | None = None, thread_id: UUID | None = None
) -> list[Run]:
    """Active runs (all, or of one status, or of one thread), locked for a cancel."""
    statuses = ACTIVE if status in (None, "all") else (status,)
    query = select(runs).where(runs.c.status.in_(statuses))
    if thread_id is not None:
        query = query.where(runs.c.thread_id == thread_id)
    rows = (await conn.execute(query.order_by(runs.c.created_at).with_for_update())).all()
    return [to_run(r) for r in rows]


async def set_status(conn: AsyncConnection, run_id: UUID, status: RunStatus) -> None:
    await conn.execute(
        update(runs)
        .where(runs.c.run_id == run_id)
        .values(status=status.value, lease_until=None, updated_at=sql.now(conn.dialect))
    )


async def request_cancel(conn: AsyncConnection, run_id: UUID, action: str) -> None:
    await conn.execute(update(runs).where(runs.c.run_id == run_id).values(cancel_action=action))


async def delete_run(conn: AsyncConnection, run_id: UUID, attempt: int | None = None) -> bool:
    """Deletes the run (fenced on `attempt` when given); False if nothing was deleted."""
    condition = runs.c.run_id == run_id if attempt is None else owned(run_id, attempt)
    result = await conn.execute(delete(runs).where(condition).returning(runs.c.run_id))
    return result.first() is not None


async def lock_expired(conn: AsyncConnection) -> list[Run]:
    """Running runs whose lease ran out: their worker died or stalled."""
    query = (
        select(runs)
        .where(runs.c.status == RunStatus.RUNNING.value, runs.c.lease_until < sql.now(conn.dialect))
        .order_by(runs.c.created_at)
        .with_for_update(skip_locked=True)
    )
    return [to_run(r) for r in (await conn.execute(query)).all()]


async def release(conn: AsyncConnection, run_id: UUID, attempt: int | None = None) -> bool:
    """Back to pending for another worker (fenced on `attempt` when given)."""
    condition = runs.c.run_id == run_id if attempt is None else owned(run_id, attempt)
    result = await conn.execute(
        update(runs)
        .where(condition)
        .values(
            status=RunStatus.PENDING.value,
            lease_until=None,
            worker_id=None,
            updated_at=sql.now(conn.dialect),
        )
        .returning(runs.c.run_id)
    )
    return result.first() is not None


async def touch_stale_pending(conn: AsyncConnection, older_than: timedelta) -> list[UUID]:
    """Due pending runs untouched for `older_than`: their wake-up may be lost; mark them seen."""
    stale = (
        select(runs.c.run_id)
        .where(
            runs.c.status == RunStatus.PENDING.value,
            runs.c.created_at <= sql.now(conn.dialect),
            runs.c.updated_at < sql.later(conn.dialect, -older_than),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await conn.execute(
        update(runs)
        .where(runs.c.run_id.in_(stale))
        .values(updated_at=sql.now(conn.dialect))
        .returning(runs.c.run_id)
    )
    return [row[0] for row in result.all()]


async def fail_run(conn: AsyncConnection, run_id: UUID) -> None:
    await set_status(conn, run_id, RunStatus.ERROR)


async def lock_thread_of(conn: AsyncConnection, run_id: UUID) -> tuple[UUID, bool] | None:
    """The run's thread (id, temporary), row-locked so claims on one thread take turns."""
    query = (
        select(threads.c.thread_id, threads.c.temporary)
        .join(runs, runs.c.thread_id == threads.c.thread_id)
        .where(runs.c.run_id == run_id)
        .with_for_update(of=threads)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else (row[0], row[1])


def head_of(thread_id: Any, now: Any) -> Select[UUID, str]:
    """A thread's head run (id, status): the running one, else its oldest due pending one."""
    running = runs.c.status == RunStatus.RUNNING.value
    pending = runs.c.status == RunStatus.PENDING.value  # not IN: the claim is prebuilt
    return (
        select(runs.c.run_id, runs.c.status)
        .where(
            runs.c.thread_id == thread_id,
            running | (pending & (runs.c.created_at <= now)),
        )
        .order_by(running.desc(), runs.c.created_at, runs.c.run_id)
        .limit(1)
    )


async def queue_of(conn: AsyncConnection, thread_id: UUID) -> tuple[bool, UUID | None]:
    """(is a run running, the next due pending run) on a thread, in one query."""
    row = (await conn.execute(head_of(thread_id, sql.now(conn.dialect)))).first()
    if row is None:
        return False, None
    return (True, None) if row[1] == RunStatus.RUNNING.value else (False, row[0])


def active_on(thread_id: Any) -> Select[UUID]:
    """The thread's pending or running runs (a value or a bind parameter).

    Spelled without IN so that prebuilt statements (storage.driver) can embed it.
    """
    active = (runs.c.status == RunStatus.PENDING.value) | (runs.c.status == RunStatus.RUNNING.value)
    return select(runs.c.run_id).where(runs.c.thread_id == thread_id, active)


async def has_active(conn: AsyncConnection, thread_id: UUID) -> bool:
    return (await conn.execute(active_on(thread_id).limit(1))).first() is not None
