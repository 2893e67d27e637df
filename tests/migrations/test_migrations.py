"""Migrations are checked: head matches the tables, and downgrade/upgrade round-trips.

Each test migrates its own throwaway database. The tests are sync on purpose: Alembic's
env.py calls asyncio.run, which cannot run inside an event loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from broker import migrate
from broker.settings import async_database_url
from broker.storage.tables import metadata
from tests.pooler import pgbouncer
from tests.services import Services

# Relations and types left in the public schema, except Alembic's own bookkeeping.
_LEFTOVERS = """
SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
UNION ALL
SELECT 'type ' || t.typname FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c', 'r')
  AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid)
"""


def _libpq(uri: str) -> str:
    return uri.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _execute(uri: str, sql: str) -> None:
    connection = await asyncpg.connect(_libpq(uri))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _column(uri: str, sql: str) -> set[str]:
    connection = await asyncpg.connect(_libpq(uri))
    try:
        return {row[0] for row in await connection.fetch(sql)}
    finally:
        await connection.close()


def _diff_in(connection: Connection) -> list[Any]:
    options = {"compare_type": True, "compare_server_default": True}
    context = MigrationContext.configure(connection, opts=options)
    return list(compare_metadata(context, metadata))


async def _schema_diff(url: str) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_diff_in)
    finally:
        await engine.dispose()


def _tables(url: str) -> set[str]:
    sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    return asyncio.run(_column(url, sql)) - {"alembic_version"}


@pytest.fixture
def empty_database(services: Services) -> Iterator[str]:
    """The async SQLAlchemy URL of a new, empty database, dropped afterwards."""
    name = f"broker_migrations_{uuid.uuid4().hex[:12]}"
    admin = services.database_uri
    asyncio.run(_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield async_database_url(urlparse(_libpq(admin))._replace(path=f"/{name}").geturl())
    finally:
        asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_head_matches_the_tables(empty_database: str) -> None:
    migrate.upgrade(empty_database)

    assert asyncio.run(_schema_diff(empty_database)) == []


def test_downgrade_to_base_leaves_nothing_and_upgrade_works_again(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    assert _tables(empty_database) == set(metadata.tables)

    migrate.downgrade(empty_database)
    assert asyncio.run(_column(empty_database, _LEFTOVERS)) == set()

    migrate.upgrade(empty_database)
    assert _tables(empty_database) == set(metadata.tables)
    assert asyncio.run(_schema_diff(empty_database)) == []


def test_migrations_run_through_a_transaction_pooler(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`broker migrate` with DATABASE_URI at PgBouncer (transaction mode) works both ways."""
    monkeypatch.setenv("BROKER_DATABASE_POOLER", "transaction")
    with pgbouncer(_libpq(empty_database)) as bouncer:
        pooled = async_database_url(bouncer.uri)
        migrate.upgrade(pooled)
        migrate.downgrade(pooled)
        migrate.upgrade(pooled)
    assert _tables(empty_database) == set(metadata.tables)


def test_wait_returns_once_the_schema_is_at_head(empty_database: str) -> None:
    """`broker migrate --wait` (a Kubernetes initContainer) waits for the migrate Job."""
    assert not migrate.at_head(empty_database)
    assert not migrate.wait_for_head(0, empty_database)
    migrate.upgrade(empty_database, "0001")
    assert not migrate.at_head(empty_database)
    migrate.upgrade(empty_database)
    assert migrate.wait_for_head(0, empty_database)


def test_wait_gives_up_with_exit_1(empty_database: str) -> None:
    env = {**os.environ, "DATABASE_URI": empty_database}
    command = [sys.executable, "-m", "broker", "migrate", "--wait", "0"]
    waited = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert waited.returncode == 1, waited.stderr
    assert "not migrated after 0s" in waited.stderr
    migrate.upgrade(empty_database)
    waited = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert waited.returncode == 0, waited.stderr
