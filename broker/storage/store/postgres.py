"""The store's tables on Postgres: time in the database, JSONB paths, an advisory lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Interval, Text, bindparam, cast, func, literal, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import jsonable
from broker.storage.store.base import StoreTables, delete_vectors
from broker.storage.tables import store_items

_SWEEPER_TURN = text("SELECT pg_try_advisory_xact_lock(hashtext('langgraph-broker:store-sweeper'))")


_PGVECTOR = text("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")


class PostgresStoreTables(StoreTables):
    """Reads run outside a transaction (autocommit: one round trip, not three); a put is
    one statement, its item's old vectors deleted in a CTE of the upsert."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def _single(self) -> AsyncIterator[AsyncConnection]:
        async with self._autocommit.connect() as conn:
            yield conn

    async def _upsert_dropping_vectors(
        self, conn: AsyncConnection, params: list[dict[str, Any]]
    ) -> None:
        await conn.execute(self.upsert().add_cte(delete_vectors().cte("dropped")), params)

    async def has_pgvector(self) -> bool:
        async with self.engine.connect() as conn:
            return bool((await conn.execute(_PGVECTOR)).scalar_one())

    def _expiry(self, ttl_minutes: float | None) -> timedelta | None:
        return None if ttl_minutes is None else timedelta(minutes=ttl_minutes)

    def _expires(self) -> ColumnElement[Any]:
        # now() + NULL is NULL: an item without a ttl never expires.
        return func.now() + bindparam("expires", type_=Interval())

    def _at_path(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        return store_items.c.value.op("#>", return_type=JSONB)(literal(list(path), ARRAY(Text)))

    def _literal(self, value: Any) -> ColumnElement[Any]:
        return cast(literal(jsonable.dumps(value).decode(), Text), JSONB)

    async def _sweep_turn(self, conn: AsyncConnection) -> bool:
        return bool((await conn.execute(_SWEEPER_TURN)).scalar_one())
