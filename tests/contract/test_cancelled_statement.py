"""A statement cancelled midway through SQLAlchemy is a cancel, never an outage: it
reaches the caller as CancelledError (a retry loop that took it for StoreUnavailable
would never end), and its connection is closed, not pooled holding a lock, nor left
holding it after the close (SQLite, until a gc: broker/storage/sqlite.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.settings import Settings
from broker.storage.engine import create_engine
from tests.contract.test_checkpointer import sqlite_engine

# Both take a lock another connection holds, and wait for it (SQLite's busy_timeout).
_TAKE_LOCK = {"sqlite": "SELECT 1", "postgres": "SELECT pg_advisory_xact_lock(7734)"}

# Seconds of work at least, so that a cancel 0.2 s in lands while it runs (on SQLite,
# inside BEGIN IMMEDIATE): the statement is interrupted, or the close waits it out.
_LONG_STATEMENT = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3e7) "
    "SELECT count(*) FROM n",
    "postgres": "SELECT pg_sleep(60)",
}

# A lock still held fails the next transaction at once: SQLite's busy_timeout (ms), Postgres'.
_SHORT_LOCK_WAIT_MS = 1000


@pytest.fixture(params=["postgres", "sqlite"])
async def backend(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    if request.param == "sqlite":
        async with sqlite_engine(tmp_path) as engine:
            yield request.param, engine
        return
    engine = create_engine(settings, pool_size=2)
    yield request.param, engine
    await engine.dispose()


async def _hold_lock(
    engine: AsyncEngine, take: str, held: asyncio.Event, done: asyncio.Event
) -> None:
    async with engine.begin() as conn:  # on SQLite, BEGIN IMMEDIATE: the write lock
        await conn.execute(text(take))
        held.set()
        await done.wait()


async def _lock_held(engine: AsyncEngine, take: str) -> tuple[asyncio.Task[None], asyncio.Event]:
    """Another connection holding the lock, until the returned event is set."""
    held, done = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_lock(engine, take, held, done))
    await held.wait()
    return holder, done


async def _wait_for_lock(engine: AsyncEngine, take: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(take))


async def test_a_statement_cancelled_while_waiting_raises_cancelled_error(
    backend: tuple[str, AsyncEngine],
) -> None:
    name, engine = backend
    take = _TAKE_LOCK[name]
    holder, done = await _lock_held(engine, take)
    waiter = asyncio.create_task(_wait_for_lock(engine, take))
    await asyncio.sleep(0.2)  # the waiter's statement is blocked on the lock
    waiter.cancel()
    done.set()  # the holder commits; the cancelled statement's connection can close
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # The cancelled connection was closed, not pooled in its transaction: the lock is free.
    await asyncio.wait_for(_wait_for_lock(engine, take), 5)


async def test_a_timeout_around_a_statement_is_a_timeout(
    backend: tuple[str, AsyncEngine],
) -> None:
    name, engine = backend
    take = _TAKE_LOCK[name]
    holder, done = await _lock_held(engine, take)

    async def waiting() -> None:
        async with asyncio.timeout(0.2):
            await _wait_for_lock(engine, take)

    waiter = asyncio.create_task(waiting())
    await asyncio.sleep(0.4)  # past the timeout: the waiter is closing its connection
    done.set()
    await holder
    with pytest.raises(TimeoutError):
        await waiter
    await asyncio.wait_for(_wait_for_lock(engine, take), 5)


async def test_a_statement_cancelled_inside_a_transaction_leaves_the_lock_free(
    backend: tuple[str, AsyncEngine],
) -> None:
    name, engine = backend
    take = _TAKE_LOCK[name]
    if name == "sqlite":
        event.listen(engine.sync_engine, "connect", _short_busy_timeout)
    running = asyncio.Event()

    async def write_then_run_long() -> None:
        async with engine.begin() as conn:  # on SQLite, BEGIN IMMEDIATE: the write lock
            await conn.execute(text(take))
            running.set()
            await conn.execute(text(_LONG_STATEMENT[name]))

    victim = asyncio.create_task(write_then_run_long())
    await running.wait()
    await asyncio.sleep(0.2)  # the long statement is under way
    victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await victim
    # Without the fix (SQLite): `database is locked`, until a gc finalizes the statement.
    async with engine.begin() as conn:
        if name == "postgres":
            await conn.execute(text(f"SET LOCAL lock_timeout = {_SHORT_LOCK_WAIT_MS}"))
        await conn.execute(text(take))


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={_SHORT_LOCK_WAIT_MS}")
    finally:
        cursor.close()
