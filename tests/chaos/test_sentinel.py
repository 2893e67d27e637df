"""A Redis Sentinel failover mid-batch: REDIS_URI=redis+sentinel://… followed through it.

A real set (1 master, 1 replica, 3 sentinels, tests/sentinel.py) on loopback; the
sentinels are asked to fail over (`SENTINEL FAILOVER`) while runs execute, and runs are
accepted again right after. Every run accepted before or after must succeed (the
Postgres ledger and the sweeper's requeue), and a resumable run's event log must hold
every step's `values` event.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.failover import fail_over_mid_batch
from tests.sentinel import SentinelSet


async def test_failover_mid_batch_loses_no_run_and_no_logged_event(
    broker_env: dict[str, str], db: AsyncEngine, tmp_path: Path
) -> None:
    (tmp_path / "redis").mkdir()
    with SentinelSet(tmp_path / "redis") as redis_set:
        env = {
            **broker_env,
            "REDIS_URI": redis_set.uri,
            "BROKER_REDIS_PREFIX": f"broker-sentinel-{uuid.uuid4().hex[:8]}",
        }

        async def fail_over(_resumable: str) -> None:
            await asyncio.to_thread(redis_set.failover)

        await fail_over_mid_batch(env, db, tmp_path, fail_over)
