"""What a benchmark needs around it: Postgres and Redis, a fresh database, broker processes."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import asyncpg
import redis

from broker import migrate
from broker.settings import async_database_url
from tests.processes import GRAPHS, broker_processes
from tests.services import ensure_services


@dataclass(frozen=True)
class Broker:
    url: str  # the API's base URL
    redis_uri: str
    redis_prefix: str
    logs: Path


def libpq_uri(uri: str) -> str:
    return uri.replace("postgresql+asyncpg://", "postgresql://", 1)


async def admin_sql(uri: str, sql: str) -> None:
    connection = await asyncpg.connect(libpq_uri(uri))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def fresh_database(admin_uri: str) -> Iterator[str]:
    """A new database migrated to head; dropped afterwards, whatever happens."""
    name = f"broker_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_sql(admin_uri, f'CREATE DATABASE "{name}"'))
    try:
        uri = urlunparse(urlparse(libpq_uri(admin_uri))._replace(path=f"/{name}"))
        migrate.upgrade(async_database_url(uri))
        yield uri
    finally:
        asyncio.run(admin_sql(admin_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def running_broker(config: Path = GRAPHS) -> Iterator[Broker]:
    """`broker api` + `broker worker` on their own database and Redis prefix."""
    services = ensure_services(allow_containers=False)
    prefix = f"broker-bench-{uuid.uuid4().hex[:8]}"
    with (
        fresh_database(services.database_uri) as database_uri,
        tempfile.TemporaryDirectory(prefix="broker-bench-") as logs,
    ):
        env = {
            **os.environ,
            "DATABASE_URI": database_uri,
            "REDIS_URI": services.redis_uri,
            "BROKER_REDIS_PREFIX": prefix,
            "PYTHONUNBUFFERED": "1",  # logs readable while the processes run
        }
        try:
            with broker_processes(env, Path(logs)) as urls:
                yield Broker(urls[0], services.redis_uri, prefix, Path(logs))
        finally:
            _drop_keys(services.redis_uri, prefix)


def _drop_keys(redis_uri: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_uri)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
