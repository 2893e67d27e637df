"""A worker stopping while its tasks wait on a statement still stops.

Its sweeper and cron scheduler start with a statement each; cancelled while those wait
(busy_timeout) for SQLite's lock, they must end. A cancel taken for an outage was retried
instead: the task then slept its period out and the burst worker never returned. A run's
heartbeat, cancelled when its run ends, must end too, whatever its store made of the
cancel: the run's task waits for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import text

from broker.errors import StoreUnavailable
from broker.ids import uuid7
from broker.lifecycle import RunLifecycle
from broker.models import Claim, RunRequest, RunStatus
from broker.runtime import Runtime
from broker.storage.runs import Lease
from tests.lifecycle.conftest import drain
from worker.loop import Worker


@pytest.mark.parametrize("runtime", ["sqlite"], indirect=True)
async def test_a_burst_worker_stops_while_its_side_tasks_wait_for_the_lock(
    runtime: Runtime,
) -> None:
    async with runtime.engine.begin() as conn:  # BEGIN IMMEDIATE: SQLite's write lock
        await conn.execute(text("SELECT 1"))
        worker = asyncio.create_task(drain(runtime))  # the queue is empty: it stops at once
        await asyncio.sleep(1.0)  # it has stopped claiming and cancelled its side tasks
    # The lock is free: the cancelled statements finish and their connections close.
    await asyncio.wait_for(worker, 30)


@dataclasses.dataclass(frozen=True)
class _CancelAsOutage(RunLifecycle):
    """Its heartbeat's statement turns a cancel into an outage, as a driver may."""

    async def heartbeat(self, claim: Claim, lease: timedelta) -> Lease:
        try:
            await asyncio.sleep(30)  # a statement that waits: the cancel lands in it
        except asyncio.CancelledError as exc:
            raise StoreUnavailable("Postgres", exc) from exc
        return await super().heartbeat(claim, lease)


@pytest.mark.parametrize("runtime", ["postgres"], indirect=True)
async def test_a_run_ends_though_its_heartbeat_took_the_cancel_for_an_outage(
    runtime: Runtime,
) -> None:
    thread = await runtime.service.create_thread(uuid7(), {})
    request = RunRequest(assistant_id="slow", input={"steps": 2, "delay": 0.3})
    run = (await runtime.service.submit(thread.thread_id, request, subscribe=False)).run
    fields = {f.name: getattr(runtime.lifecycle, f.name) for f in dataclasses.fields(RunLifecycle)}
    worker = Worker(runtime.settings, _CancelAsOutage(**fields), runtime.checkpointer)
    await asyncio.wait_for(worker.run(burst=True), 30)  # the heartbeat was mid-statement
    assert (await runtime.service.runs.get(run.run_id)).status == RunStatus.SUCCESS
