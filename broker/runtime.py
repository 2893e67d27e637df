"""Builds one process's broker: storage, queue, bus and event log, graphs, service.

Production (`open_runtime`) uses Postgres and Redis; `broker dev` (`open_dev_runtime`)
uses a SQLite file and in-process adapters of the same ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.board import RedisWorkerBoard
from broker.config import ProjectConfig, read_config
from broker.crons import CronService
from broker.events import (
    LocalEventBus,
    LocalEventLog,
    RedisEventLog,
    redis_event_bus,
)
from broker.graphs import GraphRegistry
from broker.graphs import load_graphs as graphs_of
from broker.keys import Keys
from broker.lifecycle import RunLifecycle
from broker.liveness import RedisLiveness
from broker.memory import Store
from broker.messaging import Messaging
from broker.queue import LocalRunQueue, RedisRunQueue
from broker.redis_uri import connect_redis
from broker.retention import RetentionPolicy, RetentionSweeper
from broker.service import BrokerService, Policies, Stores
from broker.settings import Settings
from broker.state import StateReader
from broker.storage.assistants import AssistantStore
from broker.storage.crons import CronStore
from broker.storage.engine import create_engine
from broker.storage.ledger import open_ledger
from broker.storage.outbox import OutboxStore
from broker.storage.retention import RetentionStore
from broker.storage.runs import RunStore
from broker.storage.saver import FencingSaver
from broker.storage.store import open_store_tables
from broker.storage.threads import ThreadStore
from broker.webhooks.payload import Webhooks
from broker.webhooks.policy import WebhookPolicy
from broker.webhooks.sender import SendPolicy, WebhookSender

Closer = Callable[[], Awaitable[Any]]


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    service: BrokerService  # the API's side of runs and threads
    lifecycle: RunLifecycle  # the worker's side
    store: Store  # long-term memory: the /store routes' and every graph's
    closers: list[Closer] = field(default_factory=list)
    # Set when the process must stop now (a second Ctrl-C): workers hand their runs back.
    hurry: asyncio.Event = field(default_factory=asyncio.Event)

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
    bus = redis_event_bus(redis, settings.stream_buffer_bytes)
    checkpointer = PostgresCheckpointer(engine)
    board = RedisWorkerBoard(redis, keys)
    messaging = Messaging(
        RedisRunQueue(redis, keys),
        bus,
        RedisEventLog(redis),
        keys,
        board,
        RedisLiveness(redis, keys),
    )
    service, lifecycle, store = _assemble(settings, engine, messaging, graphs, checkpointer)
    await service.start()
    await store.start()
    closers: list[Closer] = [bus.close, redis.aclose, service.close]  # closed last first
    return Runtime(settings, engine, service, lifecycle, store, closers)


def _assemble(
    settings: Settings,
    engine: AsyncEngine,
    messaging: Messaging,
    graphs: GraphRegistry,
    checkpointer: BaseCheckpointSaver[str],
) -> tuple[BrokerService, RunLifecycle, Store]:
    """The service and lifecycle on these stores; the store every graph is given.

    Called inside the event loop: the store's sync API runs its work there."""
    store = Store(open_store_tables(engine), graphs.store_section, graphs.base)
    graphs.attach_store(store)
    project = read_config(settings.config, quiet=True) if settings.config else None
    hooks = _webhook_policy(project)
    retention = RetentionPolicy.of(
        project.thread_ttl if project else None,
        sweep_seconds=settings.retention_sweep_seconds,
        batch=settings.retention_batch,
        deliveries_kept=timedelta(days=settings.webhook_retention_days),
    )
    ledger, runs, outbox = open_ledger(engine), RunStore(engine), OutboxStore(engine)
    webhooks = Webhooks(enabled=hooks.enabled)
    ledger.deliveries = webhooks.delivery  # a cancelled pending run's webhook
    stores = Stores(ledger, AssistantStore(engine), ThreadStore(engine), runs)
    policies = Policies(hooks, retention.default_ttl, settings.assistant_cache_seconds)
    service = BrokerService(stores, messaging, graphs, checkpointer, policies)
    crons = CronService(CronStore(engine), service, seconds=settings.cron_seconds)
    lifecycle = RunLifecycle(
        ledger,
        runs,
        messaging,
        graphs,
        checkpointer,
        settings.max_attempts,
        crons,
        webhooks=webhooks,
        # http.disable_webhooks: nothing is sent, not even what an earlier process wrote.
        sender=WebhookSender(outbox, _send_policy(settings), hooks.headers)
        if hooks.enabled
        else None,
        retention=RetentionSweeper(
            RetentionStore(engine), outbox, ledger, messaging, checkpointer, retention
        ),
    )
    return service, lifecycle, store


def _webhook_policy(project: ProjectConfig | None) -> WebhookPolicy:
    if project is None:
        return WebhookPolicy()
    return WebhookPolicy.of(project.webhooks, enabled=not project.http.disable_webhooks)


def _send_policy(settings: Settings) -> SendPolicy:
    return SendPolicy(
        timeout=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff=settings.webhook_backoff_seconds,
    )


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
    messaging = Messaging(
        LocalRunQueue(), LocalEventBus(settings.stream_buffer_bytes), LocalEventLog(), keys
    )
    service, lifecycle, store = _assemble(settings, engine, messaging, graphs, checkpointer)
    await service.start()
    await store.start()
    return Runtime(settings, engine, service, lifecycle, store, [service.close])
