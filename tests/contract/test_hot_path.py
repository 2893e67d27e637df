"""Submit, claim and finish in one statement (Postgres) keep the rules of the transaction
they replaced (SQLite): one running run per thread, oldest due run first, fenced ends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.models import Run, RunStatus, ThreadResult, ThreadStatus
from broker.settings import Settings
from broker.storage.engine import create_engine
from broker.storage.hot_path import HotPath, Refusal
from broker.storage.tables import runs, threads
from tests.contract.test_checkpointer import sqlite_engine

LEASE = timedelta(seconds=30)


@pytest.fixture(params=["postgres", "sqlite"])
async def store(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[HotPath]:
    if request.param == "sqlite":
        async with sqlite_engine(tmp_path) as engine:
            yield HotPath(engine)
        return
    engine = create_engine(settings)
    yield HotPath(engine)
    await engine.dispose()


def _stamps(delay: float = -1.0) -> dict[str, datetime]:
    # Explicit times: the migrated server default, now(), is not a SQLite function.
    when = datetime.now(UTC) + timedelta(seconds=delay)
    return {"created_at": when, "updated_at": when}


async def _thread(engine: AsyncEngine) -> uuid.UUID:
    thread_id = uuid.uuid4()
    async with engine.begin() as conn:
        values = {**_stamps(), "state_updated_at": datetime.now(UTC)}
        await conn.execute(insert(threads).values(thread_id=thread_id, status="busy", **values))
    return thread_id


async def _pending(
    engine: AsyncEngine, thread_id: uuid.UUID, delay: float = -1.0, **columns: Any
) -> uuid.UUID:
    run_id = uuid.uuid4()
    row = {"metadata": {}, "kwargs": {}, "multitask_strategy": "enqueue", **columns}
    async with engine.begin() as conn:
        await conn.execute(
            insert(runs).values(
                run_id=run_id,
                thread_id=thread_id,
                assistant_id=uuid.uuid4(),
                status="pending",
                **row,
                **_stamps(delay),
            )
        )
    return run_id


async def _count(engine: AsyncEngine, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def _stateless_values(run_id: uuid.UUID, thread_id: uuid.UUID) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": uuid.uuid4(),
        "status": "pending",
        "metadata": {"m": 1},
        "kwargs": {"temporary": True},
        "multitask_strategy": "enqueue",
    }


async def test_stateless_submit_creates_a_hidden_busy_thread(store: HotPath) -> None:
    run_id, thread_id = uuid.uuid4(), uuid.uuid4()
    run = await store.insert_stateless(_stateless_values(run_id, thread_id), {"graph_id": "g"})
    assert (run.run_id, run.thread_id, run.status) == (run_id, thread_id, RunStatus.PENDING)
    assert run.metadata == {"m": 1} and run.kwargs == {"temporary": True}
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(threads).where(threads.c.thread_id == thread_id))).one()
    assert (row.status, row.temporary, row.metadata) == ("busy", True, {"graph_id": "g"})


async def test_concurrent_claims_start_one_run_per_thread_oldest_first(store: HotPath) -> None:
    thread_id = await _thread(store.engine)
    first = await _pending(store.engine, thread_id, delay=-2.0)
    second = await _pending(store.engine, thread_id)
    claims = await asyncio.gather(
        *(store.claim(rid, f"w{i}", LEASE) for i, rid in enumerate([second, first] * 3))
    )
    started = [c for c in claims if c is not None]
    assert len(started) == 1
    run, temporary = started[0]
    assert (run.run_id, run.status, run.attempt, temporary) == (first, RunStatus.RUNNING, 1, False)
    assert await _count(store.engine, runs, thread_id=thread_id, status="running") == 1
    # While it runs, the thread's next run waits, whoever is woken for it.
    assert await store.claim(second, "w9", LEASE) is None


async def test_a_run_not_yet_due_is_not_claimed(store: HotPath) -> None:
    thread_id = await _thread(store.engine)
    later = await _pending(store.engine, thread_id, delay=60.0)
    assert await store.claim(later, "w", LEASE) is None
    assert await store.claim(uuid.uuid4(), "w", LEASE) is None  # no such run


async def test_finishing_a_stateless_run_is_fenced_and_takes_its_thread(
    store: HotPath,
) -> None:
    run_id, thread_id = uuid.uuid4(), uuid.uuid4()
    await store.insert_stateless(_stateless_values(run_id, thread_id), {})
    claimed = await store.claim(run_id, "w", LEASE)
    assert claimed is not None and claimed[1] is True
    attempt = claimed[0].attempt
    assert not await store.finish_stateless(run_id, attempt + 1, RunStatus.SUCCESS)
    assert (
        await _count(store.engine, threads, thread_id=thread_id) == 1
    )  # a lost claim changes nothing
    assert await store.finish_stateless(run_id, attempt, RunStatus.SUCCESS)
    assert await _count(store.engine, threads, thread_id=thread_id) == 0
    assert await _count(store.engine, runs, run_id=run_id) == 0
    assert not await store.finish_stateless(run_id, attempt, RunStatus.SUCCESS)


def _threaded_values(thread_id: uuid.UUID) -> dict[str, Any]:
    return {
        **_stateless_values(uuid.uuid4(), thread_id),
        "kwargs": {},
        "multitask_strategy": "reject",
    }


async def _thread_row(engine: AsyncEngine, thread_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(threads).where(threads.c.thread_id == thread_id))).one()


async def test_threaded_submit_tags_the_thread_and_rejects_while_a_run_is_active(
    store: HotPath,
) -> None:
    thread_id = await _thread(store.engine)
    run = await store.insert_threaded(
        _threaded_values(thread_id), {"graph_id": "g"}, unless_active=True
    )
    assert isinstance(run, Run) and (run.thread_id, run.status) == (thread_id, RunStatus.PENDING)
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.metadata) == ("busy", {"graph_id": "g"})

    refused = await store.insert_threaded(
        _threaded_values(thread_id), {"other": 1}, unless_active=True
    )
    assert refused is Refusal.BUSY
    assert (await _thread_row(store.engine, thread_id)).metadata == {"graph_id": "g"}  # rolled back
    queued = await store.insert_threaded(_threaded_values(thread_id), {}, unless_active=False)
    assert isinstance(queued, Run)  # `enqueue` waits its turn
    assert await _count(store.engine, runs, thread_id=thread_id) == 2


async def test_concurrent_rejecting_submits_accept_exactly_one(store: HotPath) -> None:
    thread_id = await _thread(store.engine)
    made = await asyncio.gather(
        *(
            store.insert_threaded(_threaded_values(thread_id), {}, unless_active=True)
            for _ in range(6)
        )
    )
    assert sum(isinstance(m, Run) for m in made) == 1
    assert made.count(Refusal.BUSY) == 5
    assert await _count(store.engine, runs, thread_id=thread_id) == 1


async def test_threaded_submit_needs_an_ordinary_thread(store: HotPath) -> None:
    missing = await store.insert_threaded(_threaded_values(uuid.uuid4()), {}, unless_active=False)
    assert missing is Refusal.NO_THREAD
    hidden = uuid.uuid4()  # a stateless run's thread
    await store.insert_stateless(_stateless_values(uuid.uuid4(), hidden), {})
    assert await store.insert_threaded(_threaded_values(hidden), {}, unless_active=False) is (
        Refusal.NO_THREAD
    )


@pytest.fixture
async def postgres_store(settings: Settings) -> AsyncIterator[HotPath]:
    engine = create_engine(settings)
    yield HotPath(engine)
    await engine.dispose()


async def test_finishing_a_threaded_run_settles_its_thread(postgres_store: HotPath) -> None:
    store = postgres_store
    thread_id = await _thread(store.engine)
    first = await _pending(store.engine, thread_id, delay=-2.0)
    second = await _pending(store.engine, thread_id)
    claimed = await store.claim(first, "w", LEASE)
    assert claimed is not None
    attempt = claimed[0].attempt
    done = ThreadResult(ThreadStatus.IDLE, values={"v": 1}, error=None)
    assert await store.finish_threaded(first, attempt + 1, RunStatus.SUCCESS, done) == (False, None)
    assert await _count(store.engine, runs, run_id=first, status="running") == 1  # unchanged

    # Another run waits on the thread: it stays busy, and that run is the one to wake.
    assert await store.finish_threaded(first, attempt, RunStatus.SUCCESS, done) == (True, second)
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.values) == ("busy", {"v": 1})
    assert await _count(store.engine, runs, run_id=first, status="success") == 1

    # The last run: the thread rests as the run left it; no values keeps the earlier ones.
    claimed = await store.claim(second, "w", LEASE)
    assert claimed is not None
    paused = ThreadResult(ThreadStatus.INTERRUPTED, values=None, interrupts={"t": [{"v": 2}]})
    assert await store.finish_threaded(second, claimed[0].attempt, RunStatus.SUCCESS, paused) == (
        True,
        None,
    )
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.values, row.interrupts, row.error) == (
        "interrupted",
        {"v": 1},
        {"t": [{"v": 2}]},
        None,
    )
