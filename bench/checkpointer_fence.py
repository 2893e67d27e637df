"""Checkpoint write latency: the plain checkpointer vs one fenced on the run's lease.

    .venv/bin/python bench/checkpointer_fence.py [--ops 1000] [--rounds 10] [--json]

On a fresh database (local Postgres), one thread and one running run; times `--ops`
`aput` calls (new checkpoints on one thread) and as many `aput_writes` calls (two
writes for a new task each) per variant. The variants alternate in `--rounds` blocks so
that drift (autovacuum, cache warmth) lands on both alike. Prints p50/p90/p99 per
operation and variant and the fenced overhead at p50. Exits 1 if a fenced p50 exceeds
the plain one by more than TARGET.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import fresh_database
from broker.settings import Settings
from broker.storage.checkpoints.postgres import PostgresCheckpointer
from broker.storage.engine import create_engine
from broker.storage.tables import runs, threads
from tests.services import ensure_services

TARGET = 0.15  # fenced p50 may exceed plain p50 by this fraction
WARMUP = 50

Operation = Callable[[PostgresCheckpointer, int], Awaitable[None]]


async def _running_run(engine: AsyncEngine) -> uuid.UUID:
    thread_id, run_id = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(insert(threads).values(thread_id=thread_id, status="busy"))
        await conn.execute(
            insert(runs).values(
                run_id=run_id,
                thread_id=thread_id,
                assistant_id=uuid.uuid4(),
                status="running",
                attempt=1,
            )
        )
    return run_id


def _operations(thread_id: str) -> dict[str, Operation]:
    parent: RunnableConfig = {
        "configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": ""}
    }

    async def aput(saver: PostgresCheckpointer, _: int) -> None:
        values = {"messages": ["hello"] * 5, "counter": 1}
        checkpoint = generate_checkpoint(channel_values=values)
        await saver.aput(parent, checkpoint, generate_metadata(), {})

    async def aput_writes(saver: PostgresCheckpointer, n: int) -> None:
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": "c"}
        }
        writes = [("messages", ["hello"]), ("counter", n)]
        await saver.aput_writes(config, writes, task_id=f"task-{uuid.uuid4()}")

    return {"aput": aput, "aput_writes": aput_writes}


async def _time(operation: Operation, saver: PostgresCheckpointer, count: int) -> list[float]:
    samples = []
    for n in range(count):
        started = time.perf_counter()
        await operation(saver, n)
        samples.append(time.perf_counter() - started)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100)
    return {
        "ops": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p90_ms": cuts[89] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


async def _measure(database_uri: str, ops: int, rounds: int) -> dict[str, dict[str, object]]:
    engine = create_engine(Settings(DATABASE_URI=database_uri))
    try:
        run_id = await _running_run(engine)
        plain = PostgresCheckpointer(engine)
        variants = {"plain": plain, "fenced": plain.fenced(run_id, 1)}
        results: dict[str, dict[str, object]] = {}
        for name, operation in _operations(str(uuid.uuid4())).items():
            samples: dict[str, list[float]] = {variant: [] for variant in variants}
            for saver in variants.values():
                await _time(operation, saver, WARMUP)
            for _ in range(rounds):
                for variant, saver in variants.items():
                    samples[variant] += await _time(operation, saver, ops // rounds)
            summaries = {variant: _summary(s) for variant, s in samples.items()}
            base, fenced = summaries["plain"]["p50_ms"], summaries["fenced"]["p50_ms"]
            results[name] = {**summaries, "fenced_overhead_p50": fenced / base - 1}
        return results
    finally:
        await engine.dispose()


def _print(results: dict[str, dict[str, object]]) -> None:
    for name, result in results.items():
        for variant in ("plain", "fenced"):
            row = result[variant]
            assert isinstance(row, dict)
            figures = "  ".join(f"{key} {row[key]:.3f}" for key in ("p50_ms", "p90_ms", "p99_ms"))
            print(f"{name:<12} {variant:<7} {figures}  (n={row['ops']})")
        print(f"{name:<12} fenced overhead at p50: {result['fenced_overhead_p50']:+.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    services = ensure_services(allow_containers=False)
    with fresh_database(services.database_uri) as database_uri:
        results = asyncio.run(_measure(database_uri, args.ops, args.rounds))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results)
    overheads = [result["fenced_overhead_p50"] for result in results.values()]
    return 0 if all(isinstance(o, float) and o <= TARGET for o in overheads) else 1


if __name__ == "__main__":
    sys.exit(main())
