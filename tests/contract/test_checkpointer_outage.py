"""A checkpoint write whose Postgres connection died fails as transient, and the pool
drops that connection: the worker's retry (the next write) gets a fresh one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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


async def test_a_lost_connection_is_transient_and_replaced(
    single: AsyncEngine, engine: AsyncEngine
) -> None:
    saver = PostgresCheckpointer(single)
    await _put(saver)  # the pool's one connection is open and known
    async with single.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    async with engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(StoreUnavailable) as raised:
        await _put(saver)
    assert raised.value.store == "Postgres", repr(raised.value)
    assert is_transient(raised.value), repr(raised.value)
    saved = await _put(saver)  # a new connection: the write goes through
    assert await saver.aget_tuple(saved) is not None
