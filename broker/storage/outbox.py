"""The webhook outbox: deliveries written by the ledger when runs end, claimed and settled
here by the senders (every worker process). A claim pushes the row's next attempt a lease
ahead, so a sender that dies mid-post leaves it to another once the lease has passed:
delivered at least once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage import dialect as sql
from broker.storage.tables import webhook_outbox

_box = webhook_outbox.c
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class DueDelivery:
    delivery_id: UUID
    run_id: UUID
    url: str
    payload: dict[str, Any]
    attempts: int  # this one included


class OutboxStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim(self, limit: int, lease: timedelta) -> list[DueDelivery]:
        """Up to `limit` due deliveries, oldest first, each held for `lease` (attempt + 1).
        Concurrent senders skip each other's rows (SKIP LOCKED on Postgres)."""
        dialect = self.engine.dialect
        due = (
            select(_box.delivery_id)
            .where(_box.status == PENDING, _box.next_attempt_at <= sql.now(dialect))
            .order_by(_box.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(webhook_outbox)
            .where(_box.delivery_id.in_(due.scalar_subquery()))
            .values(attempts=_box.attempts + 1, next_attempt_at=sql.later(dialect, lease))
            .returning(_box.delivery_id, _box.run_id, _box.url, _box.payload, _box.attempts)
        )
        async with self.engine.begin() as conn:
            rows = (await conn.execute(claim)).all()
        return [DueDelivery(*row) for row in rows]

    async def delivered(self, delivery_id: UUID, status_code: int) -> None:
        dialect = self.engine.dialect
        await self._set(
            delivery_id,
            status=DELIVERED,
            last_status=status_code,
            last_error=None,
            delivered_at=sql.now(dialect),
        )

    async def retry(
        self, delivery_id: UUID, after: timedelta, status_code: int | None, error: str
    ) -> None:
        next_at = sql.later(self.engine.dialect, after)
        await self._set(
            delivery_id, next_attempt_at=next_at, last_status=status_code, last_error=error
        )

    async def give_up(self, delivery_id: UUID, status_code: int | None, error: str) -> None:
        await self._set(delivery_id, status=FAILED, last_status=status_code, last_error=error)

    async def purge(self, older_than: timedelta, limit: int) -> int:
        """Deletes up to `limit` settled deliveries (delivered or failed) created more than
        `older_than` ago: how many."""
        old = (
            select(_box.delivery_id)
            .where(
                _box.status != PENDING,
                _box.created_at < sql.later(self.engine.dialect, -older_than),
            )
            .limit(limit)
            .scalar_subquery()
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(webhook_outbox).where(_box.delivery_id.in_(old)))
        return int(result.rowcount or 0)

    async def _set(self, delivery_id: UUID, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(webhook_outbox).where(_box.delivery_id == delivery_id).values(**values)
            )
