"""Recovery at the default settings: kill -9 of a busy worker, and Redis losing its data.

Ours only: LangGraph's in-memory dev server is one process, with nothing to recover.
Each scenario runs twice on a fresh cluster (1 `broker api` + 3 `broker worker`, the
default `N_JOBS_PER_WORKER`, a fresh database, a private redis-server so FLUSHALL harms
no one): with the defaults, and as the broker behaved before worker liveness (the
baseline: `BROKER_LIVENESS_SECONDS` an hour, so the liveness beat never comes again
after start-up and a dead worker's runs wait out the 30 s lease, lost wake-ups
`BROKER_REQUEUE_SECONDS`).

- idle cost: Redis commands/s and Postgres commits/s of the idle cluster, 3 s;
- flush: every worker SIGSTOPped, `runs` pending runs created (their wake-ups queued),
  FLUSHALL, SIGCONT: seconds until every one was claimed;
- kill: two thirds of `runs` long threaded runs over the 3 workers (the victim's runs
  must find free slots), then kill -9 of the busiest one: per run of
  the victim, seconds from the kill to its first checkpoint written by the next attempt
  (p50, p99), and double writers: threads on which an older attempt wrote a checkpoint
  after a newer one had (must be 0).
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from langgraph_sdk import get_client
from redis.asyncio import Redis

from bench.harness import fresh_database, libpq_uri
from bench.servers import say
from tests.chaos.checks import checkpoint_rows, percentile, resumed_at
from tests.chaos.cluster import Cluster
from tests.chaos.test_outages import PrivateRedis
from tests.services import ensure_services

MODES = {
    "ours": {},  # the defaults
    "baseline": {"BROKER_LIVENESS_SECONDS": "3600"},  # before liveness: leases and requeues
}
KILL_INPUT = {"steps": 400, "delay": 0.25}  # outlives the baseline's 30 s lease
FLUSH_INPUT = {"steps": 1, "delay": 0.01}
WORKERS = 3
TIMEOUT = 120.0


def run(runs: int) -> dict[str, Any]:
    """Both modes, each on its own cluster; {"ours": figures, "reference": baseline}."""
    results: dict[str, Any] = {}
    for mode, overrides in MODES.items():
        say(f"recovery: {mode} ({overrides or 'defaults'})")
        figures = _measure(overrides, runs)
        say("    " + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items()))
        results["ours" if mode == "ours" else "reference"] = figures
    return results


def _measure(overrides: dict[str, str], runs: int) -> dict[str, Any]:
    with _cluster(overrides) as (cluster, redis_uri, database_uri):
        figures = asyncio.run(_idle_cost(redis_uri, database_uri))
        flushed = asyncio.run(_flush(cluster, redis_uri, database_uri, runs))
        figures["flush_all_claimed_s"] = flushed
        # A third of the slots stays free: the killed worker's runs need somewhere to go.
        figures.update(asyncio.run(_kill(cluster, database_uri, runs * 2 // 3)))
    return figures


@contextmanager
def _cluster(overrides: dict[str, str]) -> Iterator[tuple[Cluster, str, str]]:
    services = ensure_services(allow_containers=False)
    with (
        fresh_database(services.database_uri) as database_uri,
        tempfile.TemporaryDirectory(prefix="broker-bench-recovery-") as logs,
    ):
        redis = PrivateRedis(Path(logs))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BROKER_")},
            "DATABASE_URI": database_uri,
            "REDIS_URI": redis.uri,
            "BROKER_SHUTDOWN_GRACE": "0",
            **overrides,
        }
        try:
            with Cluster(env, Path(logs)).start(apis=1, workers=WORKERS) as cluster:
                cluster.wait_for_workers()
                time.sleep(1.0)  # every worker's first beat is done
                yield cluster, redis.uri, database_uri
                for worker in cluster.workers:  # nothing to drain: the runs go with the db
                    worker.stop(signal.SIGKILL)
        finally:
            redis.stop()


async def _idle_cost(redis_uri: str, database_uri: str, seconds: float = 3.0) -> dict[str, float]:
    redis = Redis.from_url(redis_uri)
    db = await asyncpg.connect(libpq_uri(database_uri))
    commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    try:
        before = (await redis.info("stats"))["total_commands_processed"], await db.fetchval(commits)
        await asyncio.sleep(seconds)
        after = (await redis.info("stats"))["total_commands_processed"], await db.fetchval(commits)
    finally:
        await redis.aclose()
        await db.close()
    return {
        # minus our own INFO; pg_stat_database lags by up to its 0.5 s flush, both alike
        "idle_redis_commands_per_second": (after[0] - before[0] - 1) / seconds,
        "idle_postgres_commits_per_second": (after[1] - before[1]) / seconds,
    }


async def _flush(cluster: Cluster, redis_uri: str, database_uri: str, runs: int) -> float:
    """Seconds from FLUSHALL (workers resumed at once) until every pending run was claimed."""
    client = get_client(url=cluster.urls[0])
    for worker in cluster.workers:
        os.kill(worker.popen.pid, signal.SIGSTOP)
    try:
        created = [
            (await client.runs.create(None, "slow", input=FLUSH_INPUT))["run_id"]
            for _ in range(runs)
        ]
        redis = Redis.from_url(redis_uri)
        await redis.flushall()
        await redis.aclose()
        flushed = time.monotonic()
    finally:
        for worker in cluster.workers:
            os.kill(worker.popen.pid, signal.SIGCONT)
        await client.aclose()
    db = await asyncpg.connect(libpq_uri(database_uri))
    try:
        while time.monotonic() - flushed < TIMEOUT:
            left = await db.fetchval(
                "SELECT count(*) FROM runs WHERE run_id::text = ANY($1) AND status = 'pending'",
                created,
            )
            if left == 0:
                return time.monotonic() - flushed
            await asyncio.sleep(0.05)
    finally:
        await db.close()
    raise RuntimeError(f"pending runs not claimed {TIMEOUT:.0f}s after FLUSHALL")


async def _kill(cluster: Cluster, database_uri: str, runs: int) -> dict[str, float]:
    client = get_client(url=cluster.urls[0])
    created = []
    for _ in range(runs):
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "slow", input=KILL_INPUT)
        created.append((thread["thread_id"], run["run_id"]))
    await client.aclose()
    db = await asyncpg.connect(libpq_uri(database_uri))
    try:
        owned = await _victims_runs(db, [r for _, r in created])
        victim = cluster.worker_by_id(owned["worker_id"])
        killed_at = datetime.now(UTC)
        victim.stop(signal.SIGKILL)
        cluster.workers.remove(victim)
        cluster.retired.append(victim)
        threads = dict((r, t) for t, r in created)
        waits = await _resumed(db, database_uri, threads, owned["runs"], killed_at)
        await asyncio.sleep(2.0)  # time for a late write of the killed attempt (none can come)
    finally:
        await db.close()
    by_thread = await _checkpoints(database_uri, [t for t, _ in created])
    return {
        "killed_runs": float(len(waits)),
        "kill_resume_p50_s": percentile(waits, 0.5),
        "kill_resume_p99_s": percentile(waits, 0.99),
        "double_writers": float(_double_writers(by_thread)),
    }


async def _victims_runs(db: Any, run_ids: list[str]) -> dict[str, Any]:
    """Once every run is running: the busiest worker and its runs' attempts."""
    query = "SELECT run_id::text, status, attempt, worker_id FROM runs WHERE run_id::text = ANY($1)"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        rows = await db.fetch(query, run_ids)
        if all(r["status"] == "running" for r in rows):
            await asyncio.sleep(1.0)  # a few checkpoints each
            by_worker: dict[str, dict[str, int]] = {}
            for r in rows:
                by_worker.setdefault(r["worker_id"], {})[r["run_id"]] = r["attempt"]
            worker_id = max(by_worker, key=lambda w: len(by_worker[w]))
            return {"worker_id": worker_id, "runs": by_worker[worker_id]}
        await asyncio.sleep(0.1)
    raise RuntimeError("the runs never all started")


async def _resumed(
    db: Any, database_uri: str, threads: dict[str, str], runs: dict[str, int], killed: datetime
) -> list[float]:
    """Seconds from the kill to each run's first checkpoint by a later attempt."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        by_thread = await _checkpoints(database_uri, [threads[r] for r in runs])
        resumed = [resumed_at(by_thread, threads[r], attempt) for r, attempt in runs.items()]
        if all(at is not None for at in resumed):
            return [(at - killed).total_seconds() for at in resumed if at is not None]
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the killed worker's runs did not resume within {TIMEOUT:.0f}s")


async def _checkpoints(database_uri: str, thread_ids: list[str]) -> dict[str, list[Any]]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from broker.settings import async_database_url

    engine = create_async_engine(async_database_url(database_uri), pool_size=1)
    try:
        return await checkpoint_rows(engine, thread_ids)
    finally:
        await engine.dispose()


def _double_writers(by_thread: dict[str, list[Any]]) -> int:
    """Threads where an older attempt wrote after a newer one had started writing."""
    count = 0
    for rows in by_thread.values():
        attempts = [r.attempt for r in rows]  # in checkpoint order
        count += attempts != sorted(attempts)
    return count
