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
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.config import ProjectConfig, read_config
from broker.crons import CronService
from broker.events import (
    LocalEventBus,
    LocalEventLog,
    RedisEventBus,
    RedisEventLog,
)
from broker.graphs import GraphRegistry
from broker.graphs import load_graphs as graphs_of
from broker.keys import Keys
from broker.lifecycle import RunLifecycle
from broker.messaging import Messaging
from broker.queue import LocalRunQueue, RedisRunQueue
from broker.redis_uri import connect_redis
from broker.service import BrokerService, Stores
from broker.settings import Settings
from broker.state import StateReader
from broker.storage.assistants import AssistantStore
from broker.storage.crons import CronStore
from broker.storage.engine import create_engine
from broker.storage.ledger import open_ledger
from broker.storage.runs import RunStore
from broker.storage.saver import FencingSaver
from broker.storage.threads import ThreadStore

Closer = Callable[[], Awaitable[Any]]


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    service: BrokerService  # the API's side of runs and threads
    lifecycle: RunLifecycle  # the worker's side
    closers: list[Closer] = field(default_factory=list)

    @property
    def checkpointer(self) -> FencingSaver:
        return cast(FencingSaver, self.service.checkpointer)

    # The read side: routes read through these, and change state through the service.
    @property
    def state(self) -> StateReader:
        return self.service.state

    @property
    def crons(self) -> CronService:
        return self.lifecycle.crons

    @property
    def threads(self) -> ThreadStore:
        return self.service.threads

    @property
    def runs(self) -> RunStore:
        return self.service.runs

    @property
    def assistants(self) -> AssistantStore:
        return self.service.assistants

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
        await self.engine.dispose()


def read_project(settings: Settings) -> ProjectConfig:
    """The process's langgraph.json, judged (a refused key raises ConfigError)."""
    if settings.config is None:
        raise ValueError("No graphs: pass --config langgraph.json or set BROKER_CONFIG")
    return read_config(settings.config)


def load_graphs(settings: Settings) -> GraphRegistry:
    return graphs_of(read_project(settings))


async def open_runtime(settings: Settings, graphs: GraphRegistry) -> Runtime:
    """Postgres for state, Redis for wake-ups, events and cancel signals."""
    from broker.storage.checkpoints.postgres import PostgresCheckpointer

    engine = create_engine(settings)
    redis = connect_redis(settings.redis_uri)
    keys = Keys(settings.redis_prefix)
    bus = RedisEventBus(redis)
    checkpointer = PostgresCheckpointer(engine)
    messaging = Messaging(RedisRunQueue(redis, keys), bus, RedisEventLog(redis), keys)
    service, lifecycle = _assemble(settings, engine, messaging, graphs, checkpointer)
    await service.start()
    return Runtime(settings, engine, service, lifecycle, [bus.close, redis.aclose])


def _assemble(
    settings: Settings,
    engine: AsyncEngine,
    messaging: Messaging,
    graphs: GraphRegistry,
    checkpointer: BaseCheckpointSaver[str],
) -> tuple[BrokerService, RunLifecycle]:
    ledger, runs = open_ledger(engine), RunStore(engine)
    stores = Stores(ledger, AssistantStore(engine), ThreadStore(engine), runs)
    service = BrokerService(stores, messaging, graphs, checkpointer)
    crons = CronService(CronStore(engine), service, seconds=settings.cron_seconds)
    lifecycle = RunLifecycle(
        ledger, runs, messaging, graphs, checkpointer, settings.max_attempts, crons
    )
    return service, lifecycle


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
    return await open_in_process(settings, graphs, engine, SqliteCheckpointer(engine))


async def open_in_process(
    settings: Settings,
    graphs: GraphRegistry,
    engine: AsyncEngine,
    checkpointer: BaseCheckpointSaver[str],
) -> Runtime:
    """A store with in-process queue, bus and event log: `broker dev`, and fast tests
    that drive a burst-mode worker on either backend."""
    keys = Keys(settings.redis_prefix)
    messaging = Messaging(LocalRunQueue(), LocalEventBus(), LocalEventLog(), keys)
    service, lifecycle = _assemble(settings, engine, messaging, graphs, checkpointer)
    await service.start()
    return Runtime(settings, engine, service, lifecycle)
