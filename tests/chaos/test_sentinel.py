"""A Redis Sentinel failover mid-batch: REDIS_URI=redis+sentinel://… followed through it.

A real set (1 master, 1 replica, 3 sentinels, tests/sentinel.py) on loopback; the
sentinels are asked to fail over (`SENTINEL FAILOVER`) while runs execute, and runs are
accepted again right after. Every run accepted before or after must succeed (the
Postgres ledger and the sweeper's requeue), and a resumable run's event log must hold
every step's `values` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from langgraph_sdk import get_client
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.checks import (
    assert_history_is_clean,
    assert_log_has_every_step,
    checkpoint_rows,
)
from tests.chaos.cluster import Cluster
from tests.chaos.conftest import CHAOS_SETTINGS
from tests.chaos.test_crashes import _create_runs, _until_done
from tests.chaos.test_outages import _until_running
from tests.sentinel import SentinelSet

STEPS = 12


async def test_failover_mid_batch_loses_no_run_and_no_logged_event(
    broker_env: dict[str, str], db: AsyncEngine, tmp_path: Path
) -> None:
    (tmp_path / "redis").mkdir()
    with SentinelSet(tmp_path / "redis") as redis_set:
        env = {
            **broker_env,
            **CHAOS_SETTINGS,
            "REDIS_URI": redis_set.uri,
            "BROKER_REDIS_PREFIX": f"broker-sentinel-{uuid.uuid4().hex[:8]}",
        }
        with Cluster(env, tmp_path).start(apis=1, workers=2) as cluster:
            cluster.wait_for_workers()
            # Closed even when an assertion fails: its socket would fail the next test.
            async with contextlib.aclosing(get_client(url=cluster.urls[0])) as client:
                thread = await client.threads.create()
                resumable = await client.runs.create(
                    thread["thread_id"],
                    "slow",
                    input={"steps": STEPS, "delay": 0.25},
                    stream_mode=["values"],
                    stream_resumable=True,
                )
                before = await _create_runs(cluster.urls, 20, {"steps": 6, "delay": 0.2})
                await _until_running(db, [r for _, r in before])
                await asyncio.to_thread(redis_set.failover)
                after = await _create_runs(cluster.urls, 10, {"steps": 2, "delay": 0.1})

                created = [*before, *after, (thread["thread_id"], resumable["run_id"])]
                statuses = await _until_done(db, [r for _, r in created], cluster)
                assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
                assert_history_is_clean(await checkpoint_rows(db, [t for t, _ in created]))

                await assert_log_has_every_step(
                    client, thread["thread_id"], resumable["run_id"], STEPS, cluster.logs()
                )
