"""Background-run throughput and crash recovery of `broker api` + 2 `broker worker`s.

    python -m bench.throughput [--runs 2000] [--kills 4] [--quick]

1. N background runs of a no-op one-node graph on distinct threads, created by 50
   concurrent SDK clients: completed runs/s, and create → running latency p50/p99
   (`runs.started_at - runs.created_at`, both stamped by Postgres).
2. Eight slow runs (fewer than one worker's slots) while a worker is killed with SIGKILL
   every ~2 s (and replaced): recovery
   time from the kill to the run's next attempt writing its first checkpoint, p50/p99,
   beside the lease TTL it is bounded by (target: p99 ≤ lease + 1 s).
Prints the figures and saves them as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import fresh_database
from broker.settings import Settings
from broker.storage.engine import create_engine
from tests.chaos.checks import checkpoint_rows, percentile, resumed_at
from tests.chaos.cluster import Cluster
from tests.services import ensure_services

GRAPHS = Path(__file__).parent / "graphs" / "langgraph.json"
RESULTS = Path(__file__).parent / "results"
LEASE = 2.0
CLIENTS = 50
DEADLINE = 600.0

STATUS = text(
    "SELECT status, count(*), min(created_at), max(updated_at) FROM runs "
    "WHERE run_id = ANY(CAST(:ids AS uuid[])) GROUP BY status"
)
LATENCY = text(
    "SELECT EXTRACT(EPOCH FROM started_at - created_at) * 1000 FROM runs "
    "WHERE run_id = ANY(CAST(:ids AS uuid[])) AND started_at IS NOT NULL"
)


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


async def _create(
    url: str, count: int, graph: str, graph_input: dict[str, Any]
) -> list[tuple[str, str]]:
    client = get_client(url=url)
    gate = asyncio.Semaphore(CLIENTS)

    async def one(i: int) -> tuple[str, str]:
        async with gate:
            thread = await client.threads.create(metadata={"bench": i})
            run = await client.runs.create(thread["thread_id"], graph, input=graph_input)
            return thread["thread_id"], run["run_id"]

    created = await asyncio.gather(*(one(i) for i in range(count)))
    await client.aclose()
    return list(created)


async def _until_done(engine: AsyncEngine, run_ids: list[str]) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            rows = (await conn.execute(STATUS, {"ids": run_ids})).all()
        if all(r[0] not in ("pending", "running") for r in rows):
            return {
                r[0]: {"count": r[1], "first_created": r[2], "last_updated": r[3]} for r in rows
            }
        await asyncio.sleep(0.2)
    raise RuntimeError(f"runs still active after {DEADLINE}s")


async def throughput(cluster: Cluster, engine: AsyncEngine, runs: int) -> dict[str, Any]:
    say(f"throughput: {runs} background runs of a no-op graph, {CLIENTS} clients")
    created = await _create(cluster.urls[0], runs, "noop", {"value": 1})
    run_ids = [r for _, r in created]
    statuses = await _until_done(engine, run_ids)
    done = statuses.get("success", {})
    if done.get("count") != runs:
        raise RuntimeError(f"not every run succeeded: {statuses}")
    seconds = (done["last_updated"] - done["first_created"]).total_seconds()
    async with engine.connect() as conn:
        waits = [float(r[0]) for r in (await conn.execute(LATENCY, {"ids": run_ids})).all()]
    return {
        "runs": runs,
        "completed_runs_per_second": runs / seconds,
        "create_to_running_p50_ms": percentile(waits, 0.5),
        "create_to_running_p99_ms": percentile(waits, 0.99),
    }


async def recovery(cluster: Cluster, engine: AsyncEngine, kills: int) -> dict[str, Any]:
    say(f"recovery: slow runs, {kills} kill -9s of a worker ~2 s apart (lease {LEASE:g}s)")
    # Fewer runs than one worker's slots: a recovered run finds a free slot at once, so
    # this measures recovery, not queueing behind other runs.
    created = await _create(cluster.urls[0], 8, "slow", {"steps": 60, "delay": 0.2})
    thread_of = {r: t for t, r in created}
    killed: list[tuple[datetime, list[tuple[str, int]]]] = []
    for _ in range(kills):
        await asyncio.sleep(random.uniform(1.5, 2.5))
        victim = random.choice(cluster.workers)
        owned = await _owned_by(engine, Cluster.worker_id(victim))
        victim.stop(signal.SIGKILL)
        killed.append((datetime.now(UTC), owned))
        cluster.workers.remove(victim)
        cluster.retired.append(victim)
        cluster.add_worker()
    await _until_done(engine, list(thread_of))
    by_thread = await checkpoint_rows(engine, list(thread_of.values()))
    times = [
        (resumed - at).total_seconds()
        for at, owned in killed
        for run_id, attempt in owned
        if (resumed := resumed_at(by_thread, thread_of[run_id], attempt)) is not None
    ]
    return {
        "kills": kills,
        "runs_recovered": len(times),
        "recovery_p50_s": percentile(times, 0.5) if times else None,
        "recovery_p99_s": percentile(times, 0.99) if times else None,
        "lease_s": LEASE,
    }


async def _owned_by(engine: AsyncEngine, worker_id: str) -> list[tuple[str, int]]:
    query = text(
        "SELECT run_id::text, attempt FROM runs WHERE status = 'running' AND worker_id = :w"
    )
    async with engine.connect() as conn:
        return [(r[0], r[1]) for r in (await conn.execute(query, {"w": worker_id})).all()]


async def measure(database_uri: str, env: dict[str, str], runs: int, kills: int) -> dict[str, Any]:
    engine = create_engine(Settings(DATABASE_URI=database_uri))
    with (
        tempfile.TemporaryDirectory(prefix="broker-bench-") as logs,
        Cluster(env, Path(logs), GRAPHS) as cluster,
    ):
        cluster.start(apis=1, workers=2)
        await asyncio.to_thread(cluster.wait_for_workers)  # time the broker, not its start-up
        try:
            result = {"throughput": await throughput(cluster, engine, runs)}
            result["recovery"] = await recovery(cluster, engine, kills)
        except BaseException:
            print(cluster.logs(), file=sys.stderr)
            raise
    await engine.dispose()
    return result


def _env(database_uri: str, redis_uri: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URI": database_uri,
        "REDIS_URI": redis_uri,
        "BROKER_REDIS_PREFIX": f"broker-bench-{uuid.uuid4().hex[:8]}",
        "BROKER_LEASE_SECONDS": str(LEASE),
        "BROKER_HEARTBEAT_SECONDS": "0.5",
        "BROKER_SWEEP_SECONDS": "0.25",
        # A wake-up popped by a worker that dies before claiming is lost; the sweeper
        # pushes such runs again after this long. Keep it on the lease's timescale.
        "BROKER_REQUEUE_SECONDS": str(LEASE),
        "BROKER_MAX_ATTEMPTS": "10",
        "BROKER_CONFIG": str(GRAPHS),
    }


def report(result: dict[str, Any]) -> None:
    t, r = result["throughput"], result["recovery"]
    print(
        f"\nbackground runs (no-op graph, 1 api + 2 workers): {t['completed_runs_per_second']:.0f} runs/s "
        f"over {t['runs']} runs; create → running p50 {t['create_to_running_p50_ms']:.1f} ms, "
        f"p99 {t['create_to_running_p99_ms']:.1f} ms"
    )
    if r["recovery_p99_s"] is None:
        print("recovery: no kill hit a running run")
        return
    bound = r["lease_s"] + 1
    verdict = "PASS" if r["recovery_p99_s"] <= bound else "FAIL"
    print(
        f"recovery after kill -9 ({r['runs_recovered']} runs, {r['kills']} kills): "
        f"p50 {r['recovery_p50_s']:.2f} s, p99 {r['recovery_p99_s']:.2f} s = "
        f"{r['recovery_p99_s'] / r['lease_s']:.2f}x the lease ({r['lease_s']:g} s); "
        f"target p99 ≤ lease + 1 s: {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="100 runs, 1 kill")
    args = parser.parse_args(argv)
    runs, kills = (100, 1) if args.quick else (args.runs, args.kills)
    services = ensure_services()
    with fresh_database(services.database_uri) as database_uri:
        result = asyncio.run(
            measure(database_uri, _env(database_uri, services.redis_uri), runs, kills)
        )
    report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    say(f"results saved to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
