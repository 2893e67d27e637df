"""What the runs table and the webhook outbox say now, for /metrics: cheap reads on their
(status, ...) indexes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.models import RunStatus
from broker.storage.outbox import PENDING
from broker.storage.tables import UtcDateTime, runs, webhook_outbox

_ACTIVE = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
_BY_STATUS = (
    select(runs.c.status, func.count()).where(runs.c.status.in_(_ACTIVE)).group_by(runs.c.status)
)
# Due pending runs: those a worker may claim now (a delayed run's created_at is its due time).
_DUE = select(func.count(), func.min(runs.c.created_at)).where(
    runs.c.status == RunStatus.PENDING.value,
    runs.c.created_at <= bindparam("p_now", type_=UtcDateTime()),
)


@dataclass(frozen=True)
class RunCounts:
    by_status: dict[str, int]  # pending and running (ended runs are counted by workers)
    due: int  # pending runs a worker could claim now
    oldest_due_age: float  # seconds the longest-waiting due run has waited; 0 if none


async def run_counts(engine: AsyncEngine) -> RunCounts:
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        counted = {status: int(n) for status, n in (await conn.execute(_BY_STATUS)).all()}
        due, oldest = (await conn.execute(_DUE, {"p_now": now})).one()
    oldest = _aware(oldest)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return RunCounts({s: counted.get(s, 0) for s in _ACTIVE}, int(due), age)


# Deliveries not yet settled (due now or waiting for a retry's backoff): the rows are few
# when receivers keep up, and the (status, next_attempt_at) index finds them.
_PENDING_DELIVERIES = select(func.count(), func.min(webhook_outbox.c.created_at)).where(
    webhook_outbox.c.status == PENDING
)


@dataclass(frozen=True)
class OutboxCounts:
    pending: int  # webhook deliveries not yet delivered or given up
    oldest_pending_age: float  # seconds since the oldest of them was written; 0 if none


async def outbox_counts(engine: AsyncEngine) -> OutboxCounts:
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        pending, oldest = (await conn.execute(_PENDING_DELIVERIES)).one()
    oldest = _aware(oldest)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return OutboxCounts(int(pending), age)


def _aware(value: datetime | str | None) -> datetime | None:
    """min() over SQLite's text timestamps comes back as text, without the column's type."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class ActiveRun:
    """A pending or running run with what the queue view shows of its claim."""

    run_id: UUID
    thread_id: UUID
    status: str
    attempt: int
    created_at: datetime
    started_at: datetime | None
    lease_until: datetime | None
    worker_id: str | None


_ACTIVE_RUNS = (
    select(
        runs.c.run_id,
        runs.c.thread_id,
        runs.c.status,
        runs.c.attempt,
        runs.c.created_at,
        runs.c.started_at,
        runs.c.lease_until,
        runs.c.worker_id,
    )
    .where(runs.c.status.in_(_ACTIVE))
    .order_by(runs.c.created_at)
)


async def active_runs(engine: AsyncEngine, limit: int = 50) -> list[ActiveRun]:
    """The oldest pending and running runs (`broker inspect queue`)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_ACTIVE_RUNS.limit(limit))).all()
    return [ActiveRun(**row._mapping) for row in rows]
