"""Retention in-process on both backends: expired threads are deleted with everything they
owned, or (keep_latest) cut down to their latest checkpoint, in bounded batches, one
sweeper at a time."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.ids import uuid7
from broker.models import RunRequest
from broker.runtime import Runtime
from broker.settings import Settings
from broker.storage.engine import create_engine
from broker.storage.retention import RetentionStore
from broker.storage.tables import checkpoint_writes, checkpoints, runs, threads
from broker.storage.threads import TTLRequest
from broker.threads import NewThread
from tests.lifecycle.conftest import drain

HOLD = timedelta(minutes=5)
CONFIG = Path(__file__).parents[1] / "graphs" / "retention.json"  # keep_latest, 0.001 min
COUNTER: dict[str, Any] = {"count": 0, "log": []}


@pytest.fixture
def fast_settings(fast_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LG_WEBHOOK_TOKEN", "t")  # the config's webhook header names it
    return fast_settings.model_copy(update={"config": CONFIG, "retention_batch": 30})


async def _count(engine: AsyncEngine, table: Any, *thread_ids: UUID) -> int:
    """Rows of `table` on these threads."""
    text_ids = table in (checkpoints, checkpoint_writes)
    keys = [str(t) if text_ids else t for t in thread_ids]
    query = select(func.count()).select_from(table).where(table.c.thread_id.in_(keys))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def _run_on(runtime: Runtime, thread_id: UUID) -> None:
    request = RunRequest(assistant_id="counter", input=COUNTER)
    await runtime.service.submit(thread_id, request, subscribe=False)


async def _expired(seconds: float = 0.07) -> None:
    await asyncio.sleep(seconds)  # the ttls here are 0.001 min (60 ms)


async def test_an_expired_thread_goes_with_everything_it_owned(runtime: Runtime) -> None:
    policy = runtime.service.thread_policy
    doomed = await policy.create(NewThread(uuid7(), ttl=TTLRequest(60, "delete")))
    kept = await policy.create(NewThread(uuid7(), ttl=TTLRequest(60)))
    for thread in (doomed, kept):
        await _run_on(runtime, thread.thread_id)
    await drain(runtime)
    await policy.patch(doomed.thread_id, {}, TTLRequest(0.001, "delete"))  # a new clock
    before = [await _count(runtime.engine, t, doomed.thread_id) for t in (runs, checkpoints)]
    assert before[0] == 1 and before[1] > 0
    assert await _count(runtime.engine, checkpoint_writes, doomed.thread_id) > 0
    await _expired()
    report = await runtime.lifecycle.sweep_threads()
    assert "1 expired threads deleted" in report
    for table in (threads, runs, checkpoints, checkpoint_writes):
        assert await _count(runtime.engine, table, doomed.thread_id) == 0
        assert await _count(runtime.engine, table, kept.thread_id) > 0


async def test_a_running_run_on_an_expired_thread_is_cancelled(runtime: Runtime) -> None:
    thread = await runtime.service.thread_policy.create(
        NewThread(uuid7(), ttl=TTLRequest(0.001, "delete"))
    )
    request = RunRequest(assistant_id="counter", input=COUNTER)
    submitted = await runtime.service.submit(thread.thread_id, request, subscribe=True)
    await _expired()
    await runtime.lifecycle.sweep_threads()
    assert submitted.subscription is not None
    message = await submitted.subscription.get(2.0)  # its stream ends: interrupted
    await submitted.subscription.close()
    assert message is not None and b"interrupted" in message
    assert await _count(runtime.engine, runs, thread.thread_id) == 0


async def test_keep_latest_soak_keeps_checkpoints_bounded(runtime: Runtime) -> None:
    """1,000 runs on 100 threads (checkpointer.ttl: keep_latest, default_ttl 60 ms),
    swept after every round of 100: the checkpoint rows stay at one per thread after a
    sweep, and each thread's state is still exactly what its runs made."""
    count = 100
    ids = [
        (await runtime.service.thread_policy.create(NewThread(uuid7()))).thread_id
        for _ in range(count)
    ]
    # The baseline, beside them: threads whose ttl never runs out in this test.
    policy = runtime.service.thread_policy
    control = [
        (await policy.create(NewThread(uuid7(), ttl=TTLRequest(60)))).thread_id for _ in range(5)
    ]
    peak = 0
    started = time.perf_counter()
    for _ in range(10):
        for thread_id in ids + control:
            await _run_on(runtime, thread_id)
        await drain(runtime)
        peak = max(peak, await _count(runtime.engine, checkpoints, *ids))
        await _expired()
        report = await runtime.lifecycle.sweep_threads()
        assert report == f"{count} expired threads pruned to their latest checkpoint"
        assert await _count(runtime.engine, checkpoints, *ids) == len(ids)  # 1 per thread
    elapsed = time.perf_counter() - started
    unswept = await _count(runtime.engine, checkpoints, *control) / len(control)
    assert unswept == 10 * 5  # per thread: 10 runs of 5 checkpoints; swept: 1
    per_run = 5  # checkpoints a counter run writes: its input, the start, three steps
    assert peak <= len(ids) * (1 + per_run)  # unswept, 10 rounds would leave 100 * 50
    assert await _count(runtime.engine, runs, *ids) == 10 * count
    for thread_id in ids:
        thread = await runtime.service.threads.get(thread_id)
        state = await runtime.state.get(thread)
        assert state["values"] == {"count": 111, "log": ["one", "two", "three"] * 10}
        assert state["next"] == [] and state["checkpoint"]["checkpoint_id"]
    print(
        f"\nsoak: {10 * count} runs, 10 sweeps, {elapsed:.1f}s; checkpoints per thread: "
        f"swept 1, unswept {unswept:.0f}; swept peak {peak}"
    )


async def test_one_sweeper_at_a_time(fast_settings: Settings) -> None:
    """While another process holds the retention sweeper's turn, a sweep does nothing."""
    engine = create_engine(fast_settings)
    try:
        turn = "SELECT pg_try_advisory_xact_lock(hashtext('langgraph-broker:retention'))"
        store = RetentionStore(engine)
        cutoff = await store.now()
        async with engine.begin() as holder:
            assert (await holder.execute(text(turn))).scalar() is True
            assert await store.next_expired(10, HOLD, cutoff) is None
        assert await store.next_expired(10, HOLD, cutoff) is not None
    finally:
        await engine.dispose()


async def test_threads_created_without_a_ttl_get_the_default(runtime: Runtime) -> None:
    """checkpointer.ttl.default_ttl: for threads made by POST /threads and by a run's
    `if_not_exists: create`; a ttl given wins."""
    made = await runtime.service.thread_policy.create(NewThread(uuid7()))
    implicit = uuid7()
    request = RunRequest(assistant_id="counter", input=COUNTER, if_not_exists="create")
    await runtime.service.submit(implicit, request, subscribe=False)
    given = await runtime.service.thread_policy.create(NewThread(uuid7(), ttl=TTLRequest(5)))
    for thread_id in (made.thread_id, implicit):
        ttl = (await runtime.service.threads.get(thread_id)).ttl
        assert ttl is not None and (ttl.strategy, ttl.minutes) == ("keep_latest", 0.001)
    assert given.ttl is not None and (given.ttl.strategy, given.ttl.minutes) == ("delete", 5)
