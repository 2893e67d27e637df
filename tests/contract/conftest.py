"""Each port's contract runs against every backend: Redis and in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.events import EventBus, LocalEventBus, redis_event_bus
from broker.keys import Keys
from broker.queue import LocalRunQueue, RedisRunQueue, RunQueue
from broker.redis_uri import RedisClient, connect_redis
from broker.settings import Settings
from broker.storage.engine import create_engine
from tests.contract.test_checkpointer import sqlite_engine
from tests.services import Services


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[Redis]:
    client = Redis.from_url(services.redis_uri)
    yield client
    await client.aclose()


def redis_of(request: pytest.FixtureRequest) -> RedisClient:
    """A client of the one Redis ("redis") or the 3-master cluster ("cluster");
    the caller closes it. The cluster starts only for the tests that ask for it."""
    if request.param == "cluster":
        return connect_redis(request.getfixturevalue("redis_cluster_uri"))
    services: Services = request.getfixturevalue("services")
    return connect_redis(services.redis_uri)


@pytest.fixture
def keys() -> Keys:
    return Keys(f"broker-contract-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["redis", "cluster", "local"])
async def queue(request: pytest.FixtureRequest, keys: Keys) -> AsyncIterator[RunQueue]:
    if request.param == "local":
        yield LocalRunQueue()
        return
    redis = redis_of(request)
    yield RedisRunQueue(redis, keys)
    await redis.delete(keys.queue, keys.delayed)
    await redis.aclose()


@pytest.fixture(params=["redis", "cluster", "local"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "local":
        yield LocalEventBus()
        return
    redis = redis_of(request)
    redis_bus = redis_event_bus(redis)
    yield redis_bus
    await redis_bus.close()
    await redis.aclose()


@pytest.fixture(params=["postgres", "sqlite"])
async def either_engine(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """The store on each backend: the session's Postgres, and a fresh SQLite file."""
    if request.param == "sqlite":
        async with sqlite_engine(tmp_path) as engine:
            yield engine
        return
    engine = create_engine(settings)
    yield engine
    await engine.dispose()
