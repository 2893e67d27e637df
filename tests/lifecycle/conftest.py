"""The fast tier: the whole broker in this process (in-process queue, bus and event log)
on either store, with a burst-mode worker that runs the queue empty and returns.

Multitask, cancel, sweep and recovery rules run here in milliseconds, on both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.graphs import GraphRegistry, load_config
from broker.runtime import Runtime, open_in_process
from broker.settings import Settings
from broker.storage.checkpoints.postgres import PostgresCheckpointer
from broker.storage.checkpoints.sqlite import SqliteCheckpointer
from broker.storage.engine import create_engine
from tests.conftest import fresh_database
from tests.contract.test_checkpointer import sqlite_engine
from tests.services import Services
from worker.loop import Worker

GRAPHS = Path(__file__).parents[1] / "graphs" / "langgraph.json"


@pytest.fixture(scope="session")
def graphs() -> GraphRegistry:
    return load_config(GRAPHS)


@pytest.fixture(scope="module")
def own_database(services: Services) -> Iterator[str]:
    """A database per module: recovery takes over every running run it finds, the
    retention sweep every expired thread, the webhook sender every due delivery — in the
    whole database, so one module's leftovers would count in another's figures (and the
    end-to-end servers of this session run theirs in the shared one)."""
    yield from fresh_database(services)


@pytest.fixture
def fast_settings(settings: Settings, own_database: str) -> Settings:
    fast: dict[str, Any] = {
        "database_uri": own_database,
        "heartbeat_seconds": 0.2,
        "sweep_seconds": 60.0,  # the tests sweep when they mean to
        "max_attempts": 2,
        "shutdown_grace_seconds": 1.0,
        "redis_prefix": f"lifecycle-{uuid.uuid4().hex[:8]}",
    }
    return settings.model_copy(update=fast)


@pytest.fixture(params=["postgres", "sqlite"])
async def runtime(
    request: pytest.FixtureRequest, fast_settings: Settings, graphs: GraphRegistry, tmp_path: Path
) -> AsyncIterator[Runtime]:
    if request.param == "sqlite":
        async with sqlite_engine(tmp_path) as engine:
            opened = await open_in_process(
                fast_settings, graphs, engine, SqliteCheckpointer(engine)
            )
            yield opened
            await opened.close()
        return
    engine = create_engine(fast_settings)
    opened = await open_in_process(fast_settings, graphs, engine, PostgresCheckpointer(engine))
    yield opened
    await opened.close()


async def drain(runtime: Runtime) -> None:
    """Runs every queued run to its end, then returns."""
    await Worker(runtime.settings, runtime.lifecycle, runtime.checkpointer).run(burst=True)
