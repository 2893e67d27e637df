"""Threads in Postgres. Deleting a thread removes its runs and checkpoints with it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Dialect, and_, bindparam, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import Conflict, NotFound
from broker.models import Thread
from broker.storage import dialect as sql
from broker.storage import visibility
from broker.storage.driver import Prebuilt
from broker.storage.rows import to_thread
from broker.storage.runs import active_on
from broker.storage.tables import UtcDateTime, runs, threads
from broker.storage.visibility import Filter

SORTABLE = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}


@dataclass(frozen=True, slots=True)
class TTLRequest:
    """A time-to-live as a client sets it: minutes from now, and the sweep strategy."""

    minutes: float
    strategy: str = "delete"

    def params(self, now: datetime) -> dict[str, Any]:
        return {
            "p_ttl_strategy": self.strategy,
            "p_ttl_minutes": self.minutes,
            "p_expires_at": now + timedelta(minutes=self.minutes),  # SQLite's clock
        }


NO_TTL: dict[str, Any] = {
    "p_ttl_strategy": None,
    "p_ttl_minutes": None,
    "p_expires_at": None,
}


def thread_not_found(thread_id: UUID) -> NotFound:
    return NotFound(f"Thread '{thread_id}' not found.")


@functools.cache
def _by_id(dialect: Dialect) -> Any:
    """Every result and state request reads a thread by id: prebuilt (storage.driver),
    with the auth filter (`p_auth`, `{}` without one) in the same statement."""
    return select(threads).where(
        threads.c.thread_id == bindparam("p_thread_id", type_=threads.c.thread_id.type),
        visibility.visible(sql.is_postgres(dialect), threads.c.metadata),
    )


def _ttl_values(dialect: Dialect) -> dict[str, Any]:
    """The ttl columns from bind parameters (NULLs when no ttl is set); Postgres keeps
    the clock, SQLite takes `p_expires_at` computed in this process."""
    if sql.is_postgres(dialect):
        minutes = bindparam("p_ttl_minutes", type_=threads.c.ttl_minutes.type)
        expires = func.now() + minutes * literal_column("interval '1 minute'")
    else:
        expires = bindparam("p_expires_at", type_=UtcDateTime())
    return {
        "ttl_strategy": bindparam("p_ttl_strategy", type_=threads.c.ttl_strategy.type),
        "ttl_minutes": bindparam("p_ttl_minutes", type_=threads.c.ttl_minutes.type),
        "expires_at": expires,
    }


@functools.cache
def _insert(dialect: Dialect) -> Any:
    """A new thread, unless its id exists (prebuilt; SQLite takes the time as `p_now`)."""
    now = func.now() if sql.is_postgres(dialect) else bindparam("p_now", type_=UtcDateTime())
    return (
        sql.insert(dialect, threads)
        .values(
            thread_id=bindparam("p_thread_id", type_=threads.c.thread_id.type),
            metadata=bindparam("p_metadata", type_=threads.c.metadata.type),
            created_at=now,
            updated_at=now,
            state_updated_at=now,
            **_ttl_values(dialect),
        )
        .on_conflict_do_nothing()
        .returning(threads)
    )


class ThreadStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._prebuilt = Prebuilt(engine)

    async def create(
        self,
        thread_id: UUID,
        metadata: dict[str, Any],
        *,
        if_exists: str = "raise",
        ttl: TTLRequest | None = None,
        filter: Filter | None = None,
    ) -> tuple[Thread, bool]:
        """The new thread and True, or (if_exists="do_nothing") the existing one and False.

        ON CONFLICT DO NOTHING makes concurrent creates of one id safe: one inserts, the
        others wait for it and then see the row (409, or the existing thread).
        """
        now = datetime.now(UTC)
        params = {"p_thread_id": thread_id, "p_metadata": metadata, "p_now": now}
        params |= ttl.params(now) if ttl else NO_TTL
        row = await self._prebuilt.fetchrow(_insert(self._engine.dialect), params)
        if row is not None:
            return to_thread(row), True
        if if_exists == "do_nothing":
            return await self.get(thread_id, filter=filter), False
        raise Conflict(f"Thread '{thread_id}' already exists.")

    async def get(
        self, thread_id: UUID, *, include_temporary: bool = False, filter: Filter | None = None
    ) -> Thread:
        """The thread, if it exists and `filter` (an auth filter) lets the caller see it."""
        params = {"p_thread_id": thread_id} | visibility.params(filter)
        row = await self._prebuilt.fetchrow(_by_id(self._engine.dialect), params)
        thread = None if row is None else to_thread(row)
        if thread is None or (thread.temporary and not include_temporary):
            raise thread_not_found(thread_id)
        return thread

    async def patch(
        self,
        thread_id: UUID,
        metadata: dict[str, Any],
        ttl: TTLRequest | None = None,
        filter: Filter | None = None,
    ) -> Thread:
        """Merges `metadata` into the thread's metadata; a ttl given restarts its clock."""
        dialect = self._engine.dialect
        values = {
            "metadata": merged_metadata(dialect, metadata),
            "updated_at": sql.now(dialect),
        }
        if ttl is not None:
            values |= {
                "ttl_strategy": ttl.strategy,
                "ttl_minutes": ttl.minutes,
                "expires_at": sql.later(dialect, timedelta(minutes=ttl.minutes)),
            }
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(threads)
                    .where(
                        threads.c.thread_id == thread_id,
                        threads.c.temporary.is_(False),
                        visibility.visible(sql.is_postgres(dialect), threads.c.metadata, filter),
                    )
                    .values(**values)
                    .returning(threads)
                )
            ).first()
        if row is None:
            raise thread_not_found(thread_id)
        return to_thread(row)

    async def active_runs(self, thread_id: UUID) -> list[UUID]:
        """The thread's pending and running runs, oldest first."""
        query = active_on(thread_id).order_by(runs.c.created_at, runs.c.run_id)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
        filter: Filter | None = None,
    ) -> int:
        query = (
            select(func.count())
            .select_from(threads)
            .where(_matching(self._engine.dialect, metadata, values, status, filter))
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
        status: str | None = None,
        ids: list[UUID] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
        filter: Filter | None = None,
    ) -> tuple[list[Thread], int]:
        """A page of matches and the total count."""
        query = select(threads, func.count().over().label("total")).where(
            _matching(self._engine.dialect, metadata, values, status, filter)
        )
        if ids:
            query = query.where(threads.c.thread_id.in_(ids))
        column = threads.c[sort_by if sort_by in SORTABLE else "created_at"]
        query = query.order_by(column.asc() if sort_order == "asc" else column.desc())
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        total = rows[0]._mapping["total"] if rows else 0
        return [to_thread(r) for r in rows], total


def _matching(
    dialect: Dialect,
    metadata: dict[str, Any] | None,
    values: dict[str, Any] | None,
    status: str | None,
    filter: Filter | None,
) -> Any:
    conditions: list[Any] = [threads.c.temporary.is_(False)]
    if filter:
        conditions.append(visibility.visible(sql.is_postgres(dialect), threads.c.metadata, filter))
    if metadata:
        conditions.append(sql.json_contains(dialect, threads.c.metadata, metadata))
    if values:
        conditions.append(sql.json_contains(dialect, threads.c["values"], values))
    if status:
        conditions.append(threads.c.status == status)
    return and_(*conditions)


def merged_metadata(dialect: Dialect, metadata: dict[str, Any]) -> Any:
    return sql.json_merge(dialect, threads.c.metadata, metadata)
