"""Prebuilt statements on the asyncpg connection read what SQLAlchemy would, and a
statement cancelled midway or a connection lost never leaves a bad connection pooled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import StoreUnavailable, is_transient
from broker.settings import Settings
from broker.storage.driver import Driver
from broker.storage.engine import create_engine
from broker.storage.tables import runs
from tests.contract.test_ledger import _pending, _thread

BY_ID = select(runs).where(runs.c.run_id == bindparam("run_id", type_=runs.c.run_id.type))
SLEEP = select(text("pg_sleep(30)"))


@pytest.fixture
async def single(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, pool_size=1)  # every call reuses the one connection
    yield engine
    await engine.dispose()


async def test_rows_are_what_sqlalchemy_reads(engine: AsyncEngine) -> None:
    thread_id = await _thread(engine)
    run_id = await _pending(engine, thread_id, metadata={"a": [1, "b"]}, kwargs={"x": None})
    async with engine.connect() as conn:
        expected = dict((await conn.execute(BY_ID, {"run_id": run_id})).one()._mapping)
    assert await Driver(engine).fetchrow(BY_ID, {"run_id": run_id}) == expected
    assert await Driver(engine).fetchrow(BY_ID, {"run_id": uuid.uuid4()}) is None


async def test_a_cancelled_statement_does_not_poison_the_pool(single: AsyncEngine) -> None:
    driver = Driver(single)
    sleeping = asyncio.create_task(driver.fetchval(SLEEP, {}))
    await asyncio.sleep(0.2)  # the statement is running on the server
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    # asyncpg settles the cancel itself: the pool's one connection serves the next call.
    assert await asyncio.wait_for(driver.fetchval(select(text("1")), {}), 5) == 1


async def test_a_connection_lost_in_use_is_transient_and_replaced(
    single: AsyncEngine, engine: AsyncEngine
) -> None:
    driver = Driver(single)
    pid = await driver.fetchval(select(text("pg_backend_pid()")), {})
    sleeping = asyncio.create_task(driver.fetchval(SLEEP, {}))
    await asyncio.sleep(0.2)  # the statement is running on the server
    async with engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(StoreUnavailable) as raised:
        await asyncio.wait_for(sleeping, 10)
    assert raised.value.store == "Postgres", repr(raised.value)
    assert is_transient(raised.value), repr(raised.value)
    assert await driver.fetchval(select(text("pg_backend_pid()")), {}) != pid


@pytest.mark.parametrize("path", ["driver", "sqlalchemy"])
async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    single: AsyncEngine, engine: AsyncEngine, path: str
) -> None:
    """What pg_terminate_backend or a Postgres restart leaves in an idle pool: the next
    statement gets a fresh connection instead of failing (and its run a lease)."""
    driver = Driver(single)
    async with driver.connect() as conn:
        pooled = conn.raw
        pid = await pooled.fetchval("SELECT pg_backend_pid()")
    async with engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await _until_closed(pooled)
    if path == "driver":
        fresh = await driver.fetchval(select(text("pg_backend_pid()")), {})
    else:
        async with single.connect() as conn:
            fresh = (await conn.execute(select(text("pg_backend_pid()")))).scalar_one()
    assert fresh != pid


async def _until_closed(connection: Any) -> None:
    """Until asyncpg has read the server's goodbye on the idle pooled connection."""
    for _ in range(500):
        if connection.is_closed():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the terminated connection never read as closed")
