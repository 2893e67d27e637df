"""Prebuilt statements run on the pooled asyncpg connection itself (Postgres only).

On the hot paths (every run's submit, claim and finish; every checkpoint write and
read) SQLAlchemy's per-execution work cost as much CPU as the round trip. A statement
built once with bind parameters is compiled here once; each call sends its SQL and
arguments straight to asyncpg, and rows come back as dicts with SQLAlchemy's result
processing applied, so callers see the same values either way (JSON is decoded by the
codec SQLAlchemy installs on each connection).

A lost connection is dropped from the pool and reported as the engine reports one:
StoreUnavailable("Postgres"), which the worker retries and the API answers with 503.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Executable
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import greenlet_spawn

from broker.errors import StoreUnavailable
from broker.storage import dialect as sql
from broker.storage.engine import CONNECTION_LOST


class Driver:
    """Runs prebuilt statements on connections from `engine`'s pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[DriverConnection]:
        """A pooled connection; statements on it autocommit unless in `transaction()`."""
        # The pool's raw connection, not an AsyncConnection: that wrapper's setup and
        # teardown cost half as much CPU as a checkpoint write. Returning it is
        # synchronous (no SQLAlchemy transaction is open, so the reset rolls back nothing).
        pooled = await self.engine.raw_connection()
        try:
            yield DriverConnection(pooled.driver_connection, self.engine.dialect)
        except CONNECTION_LOST as exc:
            await greenlet_spawn(pooled.invalidate, exc)  # closing may await: in a greenlet
            raise StoreUnavailable("Postgres", exc) from exc
        finally:
            pooled.close()

    async def fetch(self, statement: Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.connect() as conn:
            return await conn.fetch(statement, params)

    async def fetchrow(
        self, statement: Executable, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        async with self.connect() as conn:
            return await conn.fetchrow(statement, params)

    async def fetchval(self, statement: Executable, params: dict[str, Any]) -> Any:
        async with self.connect() as conn:
            return await conn.fetchval(statement, params)


class Prebuilt:
    """One prebuilt statement at a time, on either backend: on Postgres on the driver
    (autocommitted, one round trip), on SQLite (`broker dev`) through SQLAlchemy.

    For the statements every request makes (a run or a thread by id, a new thread):
    through SQLAlchemy each was BEGIN, the statement and COMMIT or ROLLBACK, about four
    times the CPU of the driver's one autocommitted statement.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.driver = Driver(engine) if sql.is_postgres(engine.dialect) else None

    async def fetchrow(
        self, statement: Executable, params: dict[str, Any]
    ) -> Mapping[Any, Any] | None:
        if self.driver is not None:
            return await self.driver.fetchrow(statement, params)
        async with self.engine.begin() as conn:  # committed: the statement may write
            row = (await conn.execute(statement, params)).first()
        return None if row is None else row._mapping


@dataclass(frozen=True)
class DriverConnection:
    """One checked-out asyncpg connection and the dialect its statements compile for."""

    raw: Any  # asyncpg.Connection
    dialect: Dialect

    async def fetch(self, statement: Executable, params: dict[str, Any]) -> list[dict[str, Any]]:
        compiled = compile_once(statement, self.dialect)
        records = await self.raw.fetch(compiled.sql, *compiled.arguments(params))
        return [compiled.row(record) for record in records]

    async def fetchrow(
        self, statement: Executable, params: dict[str, Any]
    ) -> dict[str, Any] | None:
        rows = await self.fetch(statement, params)
        return rows[0] if rows else None

    async def fetchval(self, statement: Executable, params: dict[str, Any]) -> Any:
        compiled = compile_once(statement, self.dialect)
        return await self.raw.fetchval(compiled.sql, *compiled.arguments(params))

    async def execute(self, statement: Executable, params: dict[str, Any]) -> None:
        compiled = compile_once(statement, self.dialect)
        await self.raw.execute(compiled.sql, *compiled.arguments(params))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN … COMMIT (ROLLBACK on error) around the statements inside."""
        async with self.raw.transaction():
            yield


@dataclass(frozen=True)
class CompiledStatement:
    """A statement compiled once for asyncpg: SQL, arguments' order, rows' processing."""

    sql: str
    names: tuple[str, ...]
    constants: dict[str, Any]  # binds given a value when the statement was built
    processors: dict[str, Callable[[Any], Any]]
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # result name, processor

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        values = [params[n] if n in params else self.constants[n] for n in self.names]
        return [
            self.processors[n](v) if n in self.processors else v
            for n, v in zip(self.names, values, strict=True)
        ]

    def row(self, record: Any) -> dict[str, Any]:
        return {
            name: value if process is None else process(value)
            for (name, process), value in zip(self.columns, record.values(), strict=True)
        }


@functools.cache
def compile_once(statement: Executable, dialect: Dialect) -> CompiledStatement:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if "__[POSTCOMPILE_" in compiled.string:  # rendered per execution by SQLAlchemy only
        raise ValueError(f"an expanding IN cannot be prebuilt for the driver: {compiled.string}")
    return CompiledStatement(
        sql=compiled.string,
        names=tuple(compiled.positiontup or ()),
        constants={k: b.value for k, b in compiled.binds.items() if not b.required},
        processors={
            name: process
            for name, process in compiled._bind_processors.items()
            if not _copies_list(compiled.binds[name].type, dialect)
        },
        columns=tuple(
            (entry.keyname, entry.type._cached_result_processor(dialect, None))
            for entry in compiled._result_columns
        ),
    )


def _copies_list(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """An ARRAY whose items need no conversion: its processor only copies the list we pass."""
    if not isinstance(type_, ARRAY):
        return False
    return type_.item_type.dialect_impl(dialect).bind_processor(dialect) is None
