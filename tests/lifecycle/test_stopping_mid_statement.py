"""A worker stopping while its side tasks wait on SQLite's write lock still stops.

Its sweeper and cron scheduler start with a statement each; cancelled while those wait
(busy_timeout) for the lock, they must end. A cancel taken for an outage was retried
instead: the task then slept its period out and the burst worker never returned.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from broker.runtime import Runtime
from tests.lifecycle.conftest import drain


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
