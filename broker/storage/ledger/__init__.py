"""Every state change of runs and threads: one port, one adapter per backend."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage import dialect
from broker.storage.ledger.base import Ledger


def open_ledger(engine: AsyncEngine) -> Ledger:
    if dialect.is_postgres(engine.dialect):
        from broker.storage.ledger.postgres import PostgresLedger

        return PostgresLedger(engine)
    from broker.storage.ledger.sqlite import SqliteLedger

    return SqliteLedger(engine)


__all__ = ["Ledger", "open_ledger"]
