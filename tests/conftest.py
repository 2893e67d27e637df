"""Shared fixtures: one fresh, migrated Postgres database and one Redis prefix per run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlparse, urlunparse

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import migrate
from broker.settings import Settings, async_database_url
from broker.storage.engine import create_engine
from broker.taskdump import install as install_taskdump
from tests.cluster_redis import RedisCluster
from tests.pooler import pgbouncer
from tests.services import Services, ensure_services


def pytest_configure(config: pytest.Config) -> None:
    install_taskdump()


def _with_database(uri: str, name: str) -> str:
    return urlunparse(urlparse(uri)._replace(path=f"/{name}"))


def _plain(uri: str) -> str:
    return uri.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(uri: str, sql: str) -> None:
    connection = await asyncpg.connect(_plain(uri))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def services(pytestconfig: pytest.Config) -> Services:
    """Postgres and Redis (see tests/services.py); without them the run stops, loudly."""
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    try:
        if capture is None:
            return ensure_services()
        with capture.global_and_fixture_disabled():  # show which source each service used
            return ensure_services()
    except RuntimeError as error:
        pytest.exit(str(error), returncode=2)


@pytest.fixture(scope="session")
def database_uri(services: Services) -> Iterator[str]:
    yield from fresh_database(services)


def fresh_database(services: Services) -> Iterator[str]:
    """A fresh database, migrated to head, dropped at the end of the session."""
    name = f"broker_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(services.database_uri, f'CREATE DATABASE "{name}"'))
    uri = _with_database(_plain(services.database_uri), name)
    migrate.upgrade(async_database_url(uri))
    yield uri
    asyncio.run(_admin(services.database_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"broker-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def settings(database_uri: str, services: Services, redis_prefix: str) -> Settings:
    return Settings(
        DATABASE_URI=database_uri,
        REDIS_URI=services.redis_uri,
        BROKER_REDIS_PREFIX=redis_prefix,
    )


@pytest.fixture(scope="session")
def pooled_database_uri(database_uri: str) -> Iterator[str]:
    """The session's database behind PgBouncer in transaction mode (tests/pooler.py)."""
    with pgbouncer(database_uri) as bouncer:
        yield bouncer.uri


@pytest.fixture(scope="session")
def redis_cluster_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster on loopback (tests/cluster_redis.py), as a REDIS_URI."""
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster.uri


@pytest.fixture(scope="session")
def broker_env(settings: Settings) -> dict[str, str]:
    """The environment a broker subprocess needs to share this test session's state."""
    env = dict(os.environ)
    env.update(
        DATABASE_URI=settings.database_uri,
        REDIS_URI=settings.redis_uri,
        BROKER_REDIS_PREFIX=settings.redis_prefix,
    )
    return env


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()
