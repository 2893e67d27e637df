"""The engine behind PgBouncer in transaction mode (tests/pooler.py): with
BROKER_DATABASE_POOLER=transaction the driver's prebuilt statements and SQLAlchemy's
both work while transactions of many clients share few server connections; without it
the refusal names the setting."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import bindparam, select, text

from broker.errors import StoreUnavailable
from broker.settings import Settings
from broker.storage.driver import Driver
from broker.storage.engine import create_engine
from broker.storage.tables import runs
from tests.pooler import SERVER_POOL_SIZE

BY_ID = select(runs).where(runs.c.run_id == bindparam("run_id", type_=runs.c.run_id.type))
BACKEND = select(text("pg_backend_pid()"))


async def test_statements_share_the_pooler_s_connections(pooled_database_uri: str) -> None:
    settings = Settings(DATABASE_URI=pooled_database_uri, BROKER_DATABASE_POOLER="transaction")
    clients = 3 * SERVER_POOL_SIZE  # more client connections than server ones
    engine = create_engine(settings, pool_size=clients)
    driver = Driver(engine)
    backends: set[int] = set()

    async def client() -> None:
        for _ in range(10):
            assert await driver.fetchrow(BY_ID, {"run_id": uuid.uuid4()}) is None
            async with driver.connect() as conn, conn.transaction():
                backends.add(await conn.fetchval(BACKEND, {}))
            async with engine.begin() as orm:  # SQLAlchemy's own path
                await orm.execute(BY_ID, {"run_id": uuid.uuid4()})

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await engine.dispose()
    assert 1 < len(backends) <= SERVER_POOL_SIZE


async def test_without_the_setting_the_refusal_names_it(pooled_database_uri: str) -> None:
    engine = create_engine(Settings(DATABASE_URI=pooled_database_uri), pool_size=1)
    try:
        with pytest.raises(StoreUnavailable, match="BROKER_DATABASE_POOLER=transaction"):
            await Driver(engine).fetchval(BACKEND, {})
    finally:
        await engine.dispose()
