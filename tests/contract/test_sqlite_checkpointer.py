"""A fenced SqliteCheckpointer writes only while its attempt still owns the running run.

SQLite has one writer at a time: the fence check and the write share a transaction that
holds the write lock, so a takeover either commits before it (and the write is refused)
or waits for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import LeaseLost
from broker.storage.checkpoints.sqlite import SqliteCheckpointer
from broker.storage.tables import checkpoint_writes, checkpoints, runs, threads
from tests.contract.test_checkpointer import sqlite_engine

WRITES = [("messages", "hi"), ("counter", 1)]
# Bounds the wait for a fenced write queued behind a takeover's write lock.
LOCK_WAIT_SECONDS = 5.0


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with sqlite_engine(tmp_path) as engine:
        yield engine


@pytest.fixture
async def run_id(engine: AsyncEngine) -> uuid.UUID:
    """A thread and a run on it, claimed: status 'running', attempt 1."""
    thread_id, run_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    # Timestamps given: the migrated server default, now(), is not a SQLite function.
    stamps = {"created_at": now, "updated_at": now}
    async with engine.begin() as conn:
        await conn.execute(
            insert(threads).values(
                thread_id=thread_id, status="busy", state_updated_at=now, **stamps
            )
        )
        await conn.execute(
            insert(runs).values(
                run_id=run_id,
                thread_id=thread_id,
                assistant_id=uuid.uuid4(),
                status="running",
                attempt=1,
                **stamps,
            )
        )
    return run_id


@pytest.fixture
def fenced(engine: AsyncEngine, run_id: uuid.UUID) -> SqliteCheckpointer:
    return SqliteCheckpointer(engine).fenced(run_id, 1)


async def _set_run(engine: AsyncEngine, run_id: uuid.UUID, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))


async def _stored(engine: AsyncEngine, thread_id: str) -> tuple[int, int]:
    """How many checkpoints and pending writes the thread has."""
    counts = [
        select(func.count()).select_from(table).where(table.c.thread_id == thread_id)
        for table in (checkpoints, checkpoint_writes)
    ]
    async with engine.connect() as conn:
        stored = [(await conn.execute(count)).scalar_one() for count in counts]
    return stored[0], stored[1]


async def _put(saver: SqliteCheckpointer, config: RunnableConfig) -> RunnableConfig:
    return await saver.aput(config, generate_checkpoint(), generate_metadata(), {})


async def test_fenced_writes_land_while_the_claim_holds(
    engine: AsyncEngine, fenced: SqliteCheckpointer
) -> None:
    config = generate_config()
    saved = await _put(fenced, config)
    # Parallel tasks of one superstep write at once, each in its own transaction.
    await asyncio.gather(*(fenced.aput_writes(saved, WRITES, task_id=f"t{n}") for n in range(4)))

    loaded = await fenced.aget_tuple(saved)
    assert loaded is not None
    assert [(task, channel) for task, channel, _ in loaded.pending_writes or []] == [
        (f"t{n}", channel) for n in range(4) for channel, _ in WRITES
    ]
    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 8)


@pytest.mark.parametrize(
    "change",
    [{"attempt": 2}, {"status": "success"}, {"status": "pending"}],
    ids=["taken-over", "finished", "handed-back"],
)
async def test_writes_are_refused_once_the_claim_is_gone(
    engine: AsyncEngine, run_id: uuid.UUID, fenced: SqliteCheckpointer, change: dict[str, Any]
) -> None:
    config = generate_config()
    saved = await _put(fenced, config)
    await _set_run(engine, run_id, **change)

    with pytest.raises(LeaseLost) as refused:
        await _put(fenced, saved)
    with pytest.raises(LeaseLost):
        await fenced.aput_writes(saved, WRITES, task_id="task")

    assert str(run_id) in refused.value.detail
    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 0)
    await _put(SqliteCheckpointer(engine), saved)  # unfenced writes still land


async def test_a_write_waits_for_a_takeover_in_progress(
    engine: AsyncEngine, run_id: uuid.UUID, fenced: SqliteCheckpointer
) -> None:
    config = generate_config()
    async with engine.connect() as takeover:
        # Its BEGIN IMMEDIATE holds the write lock until it commits.
        await takeover.execute(update(runs).where(runs.c.run_id == run_id).values(attempt=2))
        write = asyncio.create_task(_put(fenced, config))
        await asyncio.sleep(0.2)
        assert not write.done()
        await takeover.commit()

        async with asyncio.timeout(LOCK_WAIT_SECONDS):
            with pytest.raises(LeaseLost):
                await write

    assert await _stored(engine, config["configurable"]["thread_id"]) == (0, 0)


async def test_conformance_suite_passes_fenced(engine: AsyncEngine, run_id: uuid.UUID) -> None:
    # The fence looks only at the runs row, so the suite's arbitrary thread ids are fine.
    @checkpointer_test(name="SqliteCheckpointer.fenced")
    async def fresh_checkpointer() -> AsyncIterator[SqliteCheckpointer]:
        async with engine.begin() as conn:
            await conn.execute(delete(checkpoints))
            await conn.execute(delete(checkpoint_writes))
        yield SqliteCheckpointer(engine).fenced(run_id, 1)

    report = await validate(fresh_checkpointer)

    failures = {name: result.failures for name, result in report.results.items() if result.failures}
    assert report.conformance_level() == "FULL", failures
