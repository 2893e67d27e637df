"""The ledger on SQLite (`broker dev`): the same statements through SQLAlchemy, each rule
in one BEGIN IMMEDIATE transaction (one writer at a time: no sweeper race to settle)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.storage.ledger.base import Ledger, Tx
from broker.storage.ledger.spelling import SQLITE, sqlite_params


class SqliteLedger(Ledger):
    spelling = SQLITE

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self.engine.begin() as conn:
            yield SqliteTx(conn, datetime.now(UTC))

    def statement(self) -> Any:
        return self.transaction()

    async def _exclusive(self, tx: Tx) -> bool:
        return True  # one process, one writer


@dataclass(frozen=True)
class SqliteTx:
    """Statements on one SQLAlchemy connection, with this process' clock bound in."""

    conn: AsyncConnection
    now: datetime

    async def fetch(self, statement: Executable, params: dict[str, Any]) -> list[Any]:
        result = await self.conn.execute(statement, sqlite_params(params, self.now))
        return [row._mapping for row in result.all()]

    async def fetchrow(self, statement: Executable, params: dict[str, Any]) -> Any:
        result = await self.conn.execute(statement, sqlite_params(params, self.now))
        row = result.first()
        return None if row is None else row._mapping

    async def fetchval(self, statement: Executable, params: dict[str, Any]) -> Any:
        result = await self.conn.execute(statement, sqlite_params(params, self.now))
        row = result.first()
        return None if row is None else row[0]

    async def execute(self, statement: Executable, params: dict[str, Any]) -> None:
        await self.conn.execute(statement, sqlite_params(params, self.now))
