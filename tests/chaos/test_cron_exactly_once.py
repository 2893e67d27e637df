"""A cron fires each tick exactly once with three worker schedulers, one of them killed
(kill -9) half-way: a cron firing every second for 30 s makes 30 ± 1 runs, no two for
the same tick, and every one of them ends in success.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.cluster import Cluster

WINDOW = 30  # seconds the cron fires for
FIRED = text(
    """
    SELECT metadata->>'cron_fire_time' AS tick, status FROM runs
    WHERE metadata->>'cron_id' = :cron_id ORDER BY created_at
    """
)


@pytest.fixture
def cron_env(chaos_env: dict[str, str]) -> dict[str, str]:
    return {**chaos_env, "BROKER_CRON_SECONDS": "true", "BROKER_CRON_POLL_SECONDS": "0.2"}


async def _fired(db: AsyncEngine, cron_id: str) -> list[Any]:
    async with db.connect() as conn:
        return list((await conn.execute(FIRED, {"cron_id": cron_id})).all())


async def test_three_schedulers_and_a_kill_fire_each_tick_once(
    cron_env: dict[str, str], tmp_path: Path, db: AsyncEngine
) -> None:
    with Cluster(cron_env, tmp_path).start(apis=1, workers=3) as cluster:
        cluster.wait_for_workers()
        client = get_client(url=cluster.urls[0])
        thread = await client.threads.create()
        start = datetime.now(UTC)
        end = start + timedelta(seconds=WINDOW)
        cron: Any = await client.crons.create_for_thread(
            thread["thread_id"],
            "counter",
            schedule="* * * * * *",  # seconds first: every second
            input={"count": 0, "log": []},
            end_time=end,
        )
        await asyncio.sleep(WINDOW / 2)
        victim = cluster.kill_random_worker()
        print(f"\nkilled {victim.log.name} after {WINDOW / 2:.0f}s")
        await asyncio.sleep((end - datetime.now(UTC)).total_seconds() + 1.0)

        deadline = time.monotonic() + 30.0  # the killed worker's run: a lease later
        rows = await _fired(db, cron["cron_id"])
        while any(row.status != "success" for row in rows):
            assert time.monotonic() < deadline, f"runs never all ended: {rows}\n{cluster.logs()}"
            await asyncio.sleep(0.2)
            rows = await _fired(db, cron["cron_id"])
        remaining: Any = (await client.crons.search(thread_id=thread["thread_id"]))[0]
        await client.aclose()

    ticks = [datetime.fromisoformat(row.tick) for row in rows]
    expected = WINDOW  # the whole seconds in (start, end]
    print(f"{len(ticks)} runs for {expected} ticks; first {ticks[0]}, last {ticks[-1]}")
    assert len(set(ticks)) == len(ticks), "a tick fired twice"
    assert expected - 1 <= len(ticks) <= expected + 1
    assert all(start < tick <= end and tick.microsecond == 0 for tick in ticks)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert sum(1 for gap in gaps if gap > timedelta(seconds=1)) <= 1  # the one in flight
    assert remaining["next_run_date"] is None  # past end_time: nothing more is scheduled
