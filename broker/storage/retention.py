"""The retention sweeper's reads and marks: which expired threads to sweep next.

One sweeper at a time across processes (Postgres: a transaction-scoped advisory lock of
its own, apart from the run sweeper's). Each batch is one short transaction that picks
up to `limit` expired threads (SKIP LOCKED: a thread being written is left for the next
sweep) and pushes each one's expiry ahead before the sweeper acts on it, so another
sweeper never picks it twice: a `delete` thread by `hold` (if this process dies first,
it is picked again after that), a `keep_latest` thread by its own ttl (its next prune).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Select, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.models import ThreadStatus
from broker.storage import dialect as sql
from broker.storage.tables import threads

_TURN = text("SELECT pg_try_advisory_xact_lock(hashtext('langgraph-broker:retention'))")
KEEP_LATEST = "keep_latest"


@dataclass(frozen=True)
class Expired:
    thread_id: UUID
    strategy: str  # "delete" | "keep_latest"


class RetentionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def now(self) -> datetime:
        """The store's clock (the database's, on Postgres): a sweep's cutoff."""
        async with self.engine.connect() as conn:
            clock = select(sql.now(self.engine.dialect).label("now"))
            return (await conn.execute(clock)).scalar_one()

    async def next_expired(
        self, limit: int, hold: timedelta, cutoff: datetime
    ) -> list[Expired] | None:
        """Up to `limit` threads expired by `cutoff` (a sweep's start: a thread whose
        expiry it pushed ahead is not picked twice), marked as being swept; None when
        another process holds the sweeper's turn."""
        postgres = sql.is_postgres(self.engine.dialect)
        async with self.engine.begin() as conn:
            if postgres and not (await conn.execute(_TURN)).scalar():
                return None
            rows = (await conn.execute(self._expired(limit, cutoff))).all()
            found = [Expired(row.thread_id, row.ttl_strategy or "delete") for row in rows]
            await self._push_expiry(conn, rows, hold)
        return found

    def _expired(self, limit: int, cutoff: datetime) -> Select[Any]:
        """Expired ordinary threads, soonest first; a keep_latest one only while no run is
        on it (its history is pruned between runs, never under one)."""
        t = threads.c
        return (
            select(t.thread_id, t.ttl_strategy, t.ttl_minutes)
            .where(
                t.expires_at <= cutoff,
                t.temporary.is_(False),
                or_(
                    t.ttl_strategy.is_distinct_from(KEEP_LATEST),
                    t.status != ThreadStatus.BUSY.value,
                ),
            )
            .order_by(t.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    async def _push_expiry(
        self, conn: AsyncConnection, rows: list[object], hold: timedelta
    ) -> None:
        ahead: dict[timedelta, list[UUID]] = defaultdict(list)
        for row in rows:
            keep = row.ttl_strategy == KEEP_LATEST and row.ttl_minutes  # type: ignore[attr-defined]
            ttl = timedelta(minutes=row.ttl_minutes) if keep else hold  # type: ignore[attr-defined]
            ahead[ttl].append(row.thread_id)  # type: ignore[attr-defined]
        for delta, ids in ahead.items():
            later = sql.later(self.engine.dialect, delta)
            await conn.execute(
                update(threads).where(threads.c.thread_id.in_(ids)).values(expires_at=later)
            )
