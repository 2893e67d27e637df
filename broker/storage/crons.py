"""Crons in storage: create, read, change, delete, search. Firing them is the ledger's
(`Ledger.fire_crons`: the run it submits and the advanced schedule in one transaction).

A cron is deleted with its thread or its assistant (foreign keys ON DELETE CASCADE;
SQLite enforces them: `storage/sqlite.py` sets `foreign_keys=ON`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, and_, delete, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import NotFound
from broker.models import Cron
from broker.storage import dialect as sql
from broker.storage import visibility
from broker.storage.rows import to_cron
from broker.storage.tables import crons
from broker.storage.visibility import Filter

SORTABLE = frozenset(
    {
        "cron_id",
        "assistant_id",
        "thread_id",
        "next_run_date",
        "end_time",
        "created_at",
        "updated_at",
    }
)


def cron_not_found(cron_id: UUID) -> NotFound:
    return NotFound(f"Cron '{cron_id}' not found.")


class CronStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def _postgres(self) -> bool:
        return sql.is_postgres(self._engine.dialect)

    async def create(self, values: dict[str, Any]) -> Cron:
        """A new cron from its column values (the time stamps are the store's)."""
        now = sql.now(self._engine.dialect)
        query = crons.insert().values(**values, created_at=now, updated_at=now).returning(crons)
        try:
            async with self._engine.begin() as conn:
                return to_cron((await conn.execute(query)).one())
        except IntegrityError:  # its thread or assistant was deleted since it was checked
            raise NotFound("The cron's thread or assistant was deleted meanwhile.") from None

    async def get(self, cron_id: UUID, filter: Filter | None = None) -> Cron:
        """The cron, if `filter` (an auth filter) lets the caller see it."""
        query = select(crons).where(crons.c.cron_id == cron_id, self._visible(filter))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise cron_not_found(cron_id)
        return to_cron(row)

    async def update(
        self,
        cron_id: UUID,
        changes: dict[str, Any],
        metadata: dict[str, Any] | None,
        filter: Filter | None = None,
    ) -> Cron:
        """Sets `changes` (columns) and merges `metadata` into the cron's metadata."""
        values = {**changes, "updated_at": sql.now(self._engine.dialect)}
        if metadata:
            values["metadata"] = sql.json_merge(self._engine.dialect, crons.c.metadata, metadata)
        query = (
            update(crons)
            .where(crons.c.cron_id == cron_id, self._visible(filter))
            .values(**values)
            .returning(crons)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise cron_not_found(cron_id)
        return to_cron(row)

    async def delete(self, cron_id: UUID, filter: Filter | None = None) -> None:
        query = (
            delete(crons)
            .where(crons.c.cron_id == cron_id, self._visible(filter))
            .returning(crons.c.cron_id)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(query)).first() is None:
                raise cron_not_found(cron_id)

    async def search(
        self,
        *,
        assistant_id: UUID | None = None,
        thread_id: UUID | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
        filter: Filter | None = None,
    ) -> list[Cron]:
        query = select(crons).where(
            self._matching(assistant_id, thread_id, enabled, metadata, filter)
        )
        column = crons.c[sort_by if sort_by in SORTABLE else "created_at"]
        order = column.asc() if sort_order == "asc" else column.desc()
        query = query.order_by(order, crons.c.cron_id).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            return [to_cron(r) for r in (await conn.execute(query)).all()]

    async def count(
        self,
        *,
        assistant_id: UUID | None = None,
        thread_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        filter: Filter | None = None,
    ) -> int:
        query = (
            select(func.count())
            .select_from(crons)
            .where(self._matching(assistant_id, thread_id, None, metadata, filter))
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    def _visible(self, filter: Filter | None) -> ColumnElement[bool]:
        return visibility.visible(self._postgres, crons.c.metadata, filter)

    def _matching(
        self,
        assistant_id: UUID | None,
        thread_id: UUID | None,
        enabled: bool | None,
        metadata: dict[str, Any] | None,
        filter: Filter | None,
    ) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        if filter:
            conditions.append(self._visible(filter))
        if metadata:
            conditions.append(sql.json_contains(self._engine.dialect, crons.c.metadata, metadata))
        if assistant_id is not None:
            conditions.append(crons.c.assistant_id == assistant_id)
        if thread_id is not None:
            conditions.append(crons.c.thread_id == thread_id)
        if enabled is not None:
            conditions.append(crons.c.enabled.is_(enabled))
        return and_(true(), *conditions)
