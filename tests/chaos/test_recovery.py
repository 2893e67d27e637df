"""Recovery at the DEFAULT settings (30 s lease): a killed worker's runs, a Redis that lost
its data, Postgres connections cut. Each test asserts on the mechanism (the log line that
says what recovered the runs) and that recovery came before what used to recover them (the
dead attempt's lease; BROKER_REQUEUE_SECONDS) — bounds the old path cannot meet, with
margins of many seconds."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.settings import Settings
from tests.chaos.checks import assert_history_is_clean, checkpoint_rows
from tests.chaos.cluster import Cluster
from tests.chaos.test_crashes import _create_runs, _statuses, _until_done
from tests.chaos.test_outages import PrivateRedis, _until_running

DEFAULTS = Settings()
ROWS = text(
    "SELECT run_id::text, status, attempt, worker_id, lease_until, created_at, started_at "
    "FROM runs WHERE run_id::text = ANY(:ids)"
)


async def _rows(db: AsyncEngine, run_ids: list[str]) -> dict[str, Any]:
    async with db.connect() as conn:
        return {r.run_id: r for r in (await conn.execute(ROWS, {"ids": run_ids})).all()}


async def test_kill_9_hands_runs_over_long_before_their_leases_expire(
    default_env: dict[str, str], tmp_path: Path, db: AsyncEngine
) -> None:
    with Cluster(default_env, tmp_path).start(apis=1, workers=2) as cluster:
        cluster.wait_for_workers()
        created = await _create_runs(cluster.urls, 8, {"steps": 40, "delay": 0.25})
        run_ids = [r for _, r in created]
        await _until_running(db, run_ids)
        await asyncio.sleep(1.0)  # every run started, on either worker
        rows = await _rows(db, run_ids)
        victim_id = next(r.worker_id for r in rows.values() if r.status == "running")
        owned = {r.run_id: r for r in rows.values() if r.worker_id == victim_id}
        victim = cluster.worker_by_id(victim_id)
        killed_at = datetime.now(UTC)
        victim.stop(signal.SIGKILL)
        cluster.workers.remove(victim)
        cluster.retired.append(victim)
        taken_over = await _until_attempt_above(db, owned)
        statuses = await _until_done(db, run_ids, cluster)
        assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
        assert_history_is_clean(await checkpoint_rows(db, [t for t, _ in created]))
        # Every run of the dead worker was claimed again while its lease still ran.
        for run_id, row in owned.items():
            assert taken_over[run_id] < row.lease_until, (run_id, taken_over, row.lease_until)
        logs = cluster.logs(tail=None)
        assert "liveness: " in logs and "re-enqueued" in logs, cluster.logs()
        waits = [(taken_over[r] - killed_at).total_seconds() for r in owned]
        print(f"\nkill -9 at defaults: {len(owned)} runs taken over in {max(waits):.2f}s at most")


async def _until_attempt_above(db: AsyncEngine, owned: dict[str, Any]) -> dict[str, datetime]:
    """When each run was first seen claimed by a later attempt."""
    seen: dict[str, datetime] = {}
    deadline = time.monotonic() + 2 * DEFAULTS.lease_seconds
    while len(seen) < len(owned) and time.monotonic() < deadline:
        for run_id, row in (await _rows(db, list(owned))).items():
            if run_id not in seen and row.attempt > owned[run_id].attempt:
                seen[run_id] = datetime.now(UTC)
        await asyncio.sleep(0.1)
    assert len(seen) == len(owned), f"not taken over: {set(owned) - set(seen)}"
    return seen


async def test_redis_losing_its_data_wakes_every_pending_run_at_once(
    default_env: dict[str, str], tmp_path: Path, db: AsyncEngine
) -> None:
    private = PrivateRedis(tmp_path)
    env = {**default_env, "REDIS_URI": private.uri, "N_JOBS_PER_WORKER": "2"}
    try:
        with Cluster(env, tmp_path).start(apis=1, workers=1) as cluster:
            cluster.wait_for_workers()
            # 2 runs hold both slots; the other 6 wait on the queue, which the flush empties.
            created = await _create_runs(cluster.urls, 8, {"steps": 8, "delay": 0.25})
            run_ids = [r for _, r in created]
            await _until_running(db, run_ids)
            redis = Redis.from_url(private.uri)
            await redis.flushall()
            await redis.aclose()
            statuses = await _until_done(db, run_ids, cluster)
            assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
            assert "Redis lost its data" in cluster.logs(tail=None), cluster.logs()
            # Each run started before the sweeper's requeue would have pushed it again.
            for row in (await _rows(db, run_ids)).values():
                waited = (row.started_at - row.created_at).total_seconds()
                assert waited < DEFAULTS.requeue_seconds, (row.run_id, waited)
    finally:
        private.stop()


async def test_postgres_connections_cut_cost_no_run_a_lease(
    default_env: dict[str, str], tmp_path: Path, db: AsyncEngine
) -> None:
    with Cluster(default_env, tmp_path).start(apis=1, workers=2) as cluster:
        cluster.wait_for_workers()
        # Warm every process' pool, then let the runs go idle between supersteps.
        created = await _create_runs(cluster.urls, 10, {"steps": 12, "delay": 0.5})
        run_ids = [r for _, r in created]
        await _until_running(db, run_ids)
        await asyncio.sleep(1.0)
        cut = time.monotonic()
        async with db.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        statuses = await _until_done(db, run_ids, cluster)
        elapsed = time.monotonic() - cut
        print(f"\nPostgres connections cut: every run ended {elapsed:.1f}s later")
        assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
        assert_history_is_clean(await checkpoint_rows(db, [t for t, _ in created]))
        # The runs had ~5 s left; one stuck on a stale connection would wait out a lease.
        assert elapsed < DEFAULTS.lease_seconds, (elapsed, await _statuses(db, run_ids))
        # asyncpg's words for a statement sent on a connection already closed: a stale
        # pooled one was handed out (before, it failed the run's write, then its hand-back).
        assert "connection is closed" not in cluster.logs(tail=None), cluster.logs()
