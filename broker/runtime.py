"""Builds one process's broker: engine, Redis, queue, bus, log, graphs, service."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.events import RedisEventBus, RedisEventLog
from broker.graphs import GraphRegistry, load_config
from broker.keys import Keys
from broker.queue import RedisRunQueue
from broker.service import BrokerService
from broker.settings import Settings
from broker.state import StateReader
from broker.storage.checkpointer import PostgresCheckpointer
from broker.storage.engine import create_engine


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    bus: RedisEventBus
    service: BrokerService

    @property
    def checkpointer(self) -> PostgresCheckpointer:
        checkpointer = self.service.checkpointer
        assert isinstance(checkpointer, PostgresCheckpointer)
        return checkpointer

    @property
    def state(self) -> StateReader:
        return self.service.state

    async def close(self) -> None:
        await self.bus.close()
        await self.redis.aclose()
        await self.engine.dispose()


def load_graphs(settings: Settings) -> GraphRegistry:
    if settings.config is None:
        raise ValueError("No graphs: pass --config langgraph.json or set BROKER_CONFIG")
    return load_config(settings.config)


async def open_runtime(settings: Settings, graphs: GraphRegistry) -> Runtime:
    engine = create_engine(settings)
    redis = Redis.from_url(settings.redis_uri, health_check_interval=30)
    keys = Keys(settings.redis_prefix)
    bus = RedisEventBus(redis)
    service = BrokerService(
        engine,
        RedisRunQueue(redis, keys),
        bus,
        RedisEventLog(redis),
        keys,
        graphs,
        PostgresCheckpointer(engine),
    )
    await service.start()
    return Runtime(settings, engine, redis, bus, service)
