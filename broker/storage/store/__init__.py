"""The Store API's tables (long-term memory): one base, a thin part per backend."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.dialect import is_postgres
from broker.storage.store.base import StoreTables


def open_store_tables(engine: AsyncEngine) -> StoreTables:
    if is_postgres(engine.dialect):
        from broker.storage.store.postgres import PostgresStoreTables

        return PostgresStoreTables(engine)
    from broker.storage.store.sqlite import SqliteStoreTables

    return SqliteStoreTables(engine)
