"""Builds one process's broker: storage, queue, bus and event log, graphs, service.

Production (`open_runtime`) uses Postgres and Redis; `broker dev` (`open_dev_runtime`)
uses a SQLite file and in-process adapters of the same ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.events import LocalEventBus, LocalEventLog, RedisEventBus, RedisEventLog
from broker.graphs import GraphRegistry, load_config
from broker.keys import Keys
from broker.queue import LocalRunQueue, RedisRunQueue
from broker.service import BrokerService
from broker.settings import Settings
from broker.state import StateReader
from broker.storage.engine import create_engine
from broker.storage.saver import FencingSaver

Closer = Callable[[], Awaitable[Any]]


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    service: BrokerService
    closers: list[Closer] = field(default_factory=list)

    @property
    def checkpointer(self) -> FencingSaver:
        return cast(FencingSaver, self.service.checkpointer)

    @property
    def state(self) -> StateReader:
        return self.service.state

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        await self.engine.dispose()


def load_graphs(settings: Settings) -> GraphRegistry:
    if settings.config is None:
        raise ValueError("No graphs: pass --config langgraph.json or set BROKER_CONFIG")
    return load_config(settings.config)


async def open_runtime(settings: Settings, graphs: GraphRegistry) -> Runtime:
    """Postgres for state, Redis for wake-ups, events and cancel signals."""
    from broker.storage.checkpoints.postgres import PostgresCheckpointer

    engine = create_engine(settings)
    redis = Redis.from_url(settings.redis_uri, health_check_interval=30)
    keys = Keys(settings.redis_prefix)
    bus = RedisEventBus(redis)
    log = RedisEventLog(redis)
    checkpointer = PostgresCheckpointer(engine)
    service = BrokerService(
        engine, RedisRunQueue(redis, keys), bus, log, keys, graphs, checkpointer
    )
    await service.start()
    return Runtime(settings, engine, service, [bus.close, redis.aclose])


def _migrate_file(data: Path) -> None:
    from broker import migrate

    data.parent.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(f"sqlite+aiosqlite:///{data.resolve()}")


async def open_dev_runtime(settings: Settings, graphs: GraphRegistry, data: Path) -> Runtime:
    """One SQLite file (migrated on open) and in-process queue, bus and event log."""
    from broker.storage.checkpoints.sqlite import SqliteCheckpointer
    from broker.storage.sqlite import create_sqlite_engine

    await asyncio.to_thread(_migrate_file, data)
    engine = create_sqlite_engine(data)
    checkpointer: BaseCheckpointSaver[str] = SqliteCheckpointer(engine)
    keys = Keys(settings.redis_prefix)
    service = BrokerService(
        engine, LocalRunQueue(), LocalEventBus(), LocalEventLog(), keys, graphs, checkpointer
    )
    await service.start()
    return Runtime(settings, engine, service)
