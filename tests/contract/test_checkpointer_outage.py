"""A checkpoint write whose Postgres connection died under it fails as transient, and the
pool drops that connection: the worker's retry (the next write) gets a fresh one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.errors import StoreUnavailable, is_transient
from broker.settings import Settings
from broker.storage.checkpoints.postgres import PostgresCheckpointer
from broker.storage.engine import create_engine


@pytest.fixture
async def single(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, pool_size=1)  # the write must reuse the killed one
    yield engine
    await engine.dispose()


async def _put(saver: PostgresCheckpointer) -> RunnableConfig:
    config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4()), "checkpoint_ns": ""}}
    return await saver.aput(config, generate_checkpoint(), generate_metadata(), {})


async def test_a_connection_lost_mid_write_is_transient_and_replaced(
    single: AsyncEngine, engine: AsyncEngine
) -> None:
    """(A pooled connection the server closed while idle is replaced at checkout without
    an error: tests/contract/test_driver.py.) One lost under a write fails as transient."""
    saver = PostgresCheckpointer(single)
    await _put(saver)  # the pool's one connection is open and known
    async with engine.connect() as admin:
        await admin.execute(text("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE"))
        write = asyncio.create_task(_put(saver))  # waits for the lock, mid-statement
        pid = await _waiting_backend(admin)
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(StoreUnavailable) as raised:
            await write
        await admin.rollback()
    assert raised.value.store == "Postgres", repr(raised.value)
    assert is_transient(raised.value), repr(raised.value)
    saved = await _put(saver)  # a new connection: the write goes through
    assert await saver.aget_tuple(saved) is not None


async def _waiting_backend(admin: AsyncConnection) -> int:
    """The backend of this database waiting for a lock (the write), once it waits."""
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    for _ in range(500):
        if (pid := (await admin.execute(query)).scalar()) is not None:
            return int(pid)
        await asyncio.sleep(0.01)
    raise AssertionError("the write never waited for the lock")
