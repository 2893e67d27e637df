"""`broker inspect` on a table of a million checkpoints (issue 18): is it still fast?

    python -m bench.inspect_scale [--checkpoints 1000000] [--per-thread 100]

A scratch database (`bench_inspect_<random>`, migrated to head, dropped at the end) gets
one real thread: the `steps` graph run through our checkpointer, `--per-thread`
checkpoints with their writes and a run. Set-based SQL (INSERT ... SELECT over
generate_series) then clones that thread into as many threads as make `--checkpoints`
rows, each with its own run; a few threads also get a pending and a stuck run so the queue
has something to show. Then each view is timed on the thread in the middle: in-process
(the functions the CLI calls, median of `--repeat`) and as one real
`broker inspect VIEW --json` subprocess (start-up included). Finally the statements behind
`thread`, `checkpoint` and `runs` are captured as they run and shown with EXPLAIN (ANALYZE),
and any sequential scan over the checkpoint tables is called out. (The thread row itself
is read by a prebuilt asyncpg statement on its primary key, which the capture misses.)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlparse, urlunparse
from uuid import UUID

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.graphs.steps import builder as steps_builder
from bench.harness import admin_sql, libpq_uri
from broker import inspect, migrate
from broker.settings import Settings, async_database_url
from broker.storage.checkpoints.postgres import PostgresCheckpointer
from broker.storage.engine import create_engine
from tests.services import ensure_services

BATCH = 500  # threads cloned per statement: progress shows, no transaction grows huge
BIG_TABLES = ("checkpoints", "checkpoint_writes")
STATE_SIZE = 200  # bytes of the `steps` graph's blob field: a modest state per checkpoint
# The thread, run and assistant ids of clone `i` are derived from `i`, so the bench can
# name the middle thread without reading it back.
THREAD_ID = "md5('bench-inspect-thread-' || i)::uuid"
RUN_ID = "md5('bench-inspect-run-' || i)::uuid"
ASSISTANT_ID = UUID("00000000-0000-0000-0000-0000000000a1")
RUN_KWARGS = {"input": {"steps": 1}, "config": {"configurable": {"graph_id": "steps"}}}


def say(message: str) -> None:
    print(message, flush=True)


def thread_id_of(i: int) -> UUID:
    return UUID(hashlib.md5(f"bench-inspect-thread-{i}".encode()).hexdigest())


def _run_of(i: int) -> str:
    return str(UUID(hashlib.md5(f"bench-inspect-run-{i}".encode()).hexdigest()))


# -- the scratch database -------------------------------------------------------------


@asynccontextmanager
async def scratch_database(admin_uri: str) -> AsyncIterator[str]:
    """A new database migrated to head (as tests' fresh_database); dropped afterwards."""
    name = f"bench_inspect_{uuid.uuid4().hex[:10]}"
    await admin_sql(admin_uri, f'CREATE DATABASE "{name}"')
    try:
        uri = urlunparse(urlparse(libpq_uri(admin_uri))._replace(path=f"/{name}"))
        # Alembic runs its own event loop: off this one's thread.
        await asyncio.to_thread(migrate.upgrade, async_database_url(uri))
        say(f"database {name} created and migrated")
        yield uri
    finally:
        await admin_sql(admin_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        say(f"database {name} dropped")


# -- filling it -----------------------------------------------------------------------


async def write_template(engine: AsyncEngine, per_thread: int) -> int:
    """Thread 0 through the real checkpointer: the rows every clone copies. Returns how
    many checkpoints it wrote."""
    async with engine.begin() as conn:
        await _insert_threads(conn, 0, 0)
        await _insert_runs(conn, 0, 0)
    graph = steps_builder.compile(checkpointer=PostgresCheckpointer(engine))
    # `steps` supersteps write steps + 2 checkpoints (the input's, step 0's, one per step).
    steps = max(1, per_thread - 2)
    config: Any = {
        "configurable": {"thread_id": str(thread_id_of(0)), "run_id": _run_of(0)},
        "recursion_limit": steps + 10,
    }
    await graph.ainvoke({"steps": steps, "size": STATE_SIZE}, config)
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM checkpoints WHERE thread_id = :t"),
            {"t": str(thread_id_of(0))},
        )
    return int(count or 0)


async def _insert_threads(conn: AsyncConnection, first: int, last: int) -> None:
    await conn.execute(
        text(
            f"INSERT INTO threads (thread_id, metadata, status, created_at, updated_at) "
            f"SELECT {THREAD_ID}, jsonb_build_object('bench', 'inspect', 'n', i), 'idle', "
            f"now() - make_interval(secs => i), now() - make_interval(secs => i) "
            f"FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i"
        ),
        {"first": first, "last": last},
    )


async def _insert_runs(conn: AsyncConnection, first: int, last: int) -> None:
    await conn.execute(
        text(
            f"INSERT INTO runs (run_id, thread_id, assistant_id, status, kwargs, attempt, "
            f"created_at, updated_at, started_at) "
            f"SELECT {RUN_ID}, {THREAD_ID}, :assistant, 'success', CAST(:kwargs AS jsonb), 1, "
            f"now() - make_interval(secs => i), now() - make_interval(secs => i), "
            f"now() - make_interval(secs => i) FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i"
        ),
        {"first": first, "last": last, "assistant": ASSISTANT_ID, "kwargs": json.dumps(RUN_KWARGS)},
    )


async def _clone(conn: AsyncConnection, first: int, last: int) -> None:
    """Threads first..last: a thread row, a run, and thread 0's checkpoints and writes."""
    await _insert_threads(conn, first, last)
    await _insert_runs(conn, first, last)
    bounds = {"first": first, "last": last, "template": str(thread_id_of(0))}
    await conn.execute(
        text(
            f"INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            f"parent_checkpoint_id, run_id, step, type, checkpoint, metadata, values, "
            f"created_at) SELECT {THREAD_ID}::text, c.checkpoint_ns, c.checkpoint_id, "
            f"c.parent_checkpoint_id, {RUN_ID}::text, c.step, c.type, c.checkpoint, "
            f"c.metadata, c.values, c.created_at FROM checkpoints c "
            f"CROSS JOIN generate_series(CAST(:first AS int), CAST(:last AS int)) AS i WHERE c.thread_id = :template"
        ),
        bounds,
    )
    await conn.execute(
        text(
            f"INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
            f"idx, channel, type, blob, task_path) SELECT {THREAD_ID}::text, w.checkpoint_ns, "
            f"w.checkpoint_id, w.task_id, w.idx, w.channel, w.type, w.blob, w.task_path "
            f"FROM checkpoint_writes w CROSS JOIN generate_series(CAST(:first AS int), CAST(:last AS int)) AS i "
            f"WHERE w.thread_id = :template"
        ),
        bounds,
    )


async def _queue_runs(conn: AsyncConnection, threads: int) -> None:
    """One thread in a hundred also has a pending run; one in two hundred a stuck one."""
    await conn.execute(
        text(
            "INSERT INTO runs (run_id, thread_id, assistant_id, status, kwargs, attempt, "
            "lease_until, worker_id, created_at, updated_at) "
            f"SELECT gen_random_uuid(), {THREAD_ID}, :assistant, "
            "CASE WHEN i % 200 = 0 THEN 'running' ELSE 'pending' END, CAST(:kwargs AS jsonb), "
            "CASE WHEN i % 200 = 0 THEN 1 ELSE 0 END, "
            "CASE WHEN i % 200 = 0 THEN now() - interval '1 minute' END, "
            "CASE WHEN i % 200 = 0 THEN 'bench-worker' END, now(), now() "
            "FROM generate_series(0, CAST(:last AS int), 100) AS i"
        ),
        {"last": threads - 1, "assistant": ASSISTANT_ID, "kwargs": json.dumps(RUN_KWARGS)},
    )


async def fill(engine: AsyncEngine, checkpoints: int, per_thread: int) -> tuple[int, int]:
    """Thread 0 for real, then clones up to `checkpoints` rows; (threads, per thread)."""
    started = time.perf_counter()
    per_thread = await write_template(engine, per_thread)
    threads = max(1, checkpoints // per_thread)
    say(f"template thread: {per_thread} checkpoints through PostgresCheckpointer")
    for first in range(1, threads, BATCH):
        last = min(threads - 1, first + BATCH - 1)
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
            await _clone(conn, first, last)
        done = (last + 1) * per_thread
        rate = done / (time.perf_counter() - started)
        say(f"  {last + 1}/{threads} threads, {done:,} checkpoints ({rate:,.0f} rows/s)")
    async with engine.begin() as conn:
        await _queue_runs(conn, threads)
    async with engine.connect() as conn:
        # VACUUM refuses to run in a transaction; ANALYZE gives the planner real counts.
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    say(f"filled in {time.perf_counter() - started:.1f} s (VACUUM ANALYZE included)")
    return threads, per_thread


async def table_sizes(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """Rows and on-disk size (table + indexes + TOAST) of the tables inspect reads."""
    sizes: dict[str, dict[str, Any]] = {}
    async with engine.connect() as conn:
        for table in ("checkpoints", "checkpoint_writes", "runs", "threads"):
            rows = await conn.scalar(text(f"SELECT count(*) FROM {table}"))
            total = await conn.scalar(text(f"SELECT pg_total_relation_size('{table}')"))
            pretty = await conn.scalar(text(f"SELECT pg_size_pretty({int(total or 0)}::bigint)"))
            sizes[table] = {"rows": int(rows or 0), "bytes": int(total or 0), "size": pretty}
    return sizes


# -- timing the views -----------------------------------------------------------------

View = Callable[[AsyncEngine], Awaitable[Any]]


def views(thread_id: UUID, step: int) -> dict[str, tuple[View, list[str]]]:
    """Each view: the in-process call the CLI makes, and its command line."""
    t = str(thread_id)
    return {
        "runs": (
            lambda e: inspect.runs(e, status=None, thread_id=None, limit=50),
            ["runs"],
        ),
        "runs --thread": (
            lambda e: inspect.runs(e, status=None, thread_id=thread_id, limit=50),
            ["runs", "--thread", t],
        ),
        "thread": (lambda e: inspect.thread(e, thread_id, limit=50), ["thread", t]),
        "checkpoint": (lambda e: inspect.checkpoint(e, thread_id, step=None), ["checkpoint", t]),
        "checkpoint --step": (
            lambda e: inspect.checkpoint(e, thread_id, step=step),
            ["checkpoint", t, "--step", str(step)],
        ),
        "queue": (
            lambda e: inspect.queue(e, max_attempts=Settings().max_attempts, limit=50),
            ["queue"],
        ),
    }


async def time_in_process(engine: AsyncEngine, view: View, repeat: int) -> dict[str, float]:
    await view(engine)  # warm: the pool's connection, prepared statements
    laps = []
    for _ in range(repeat):
        started = time.perf_counter()
        inspect.to_json(await view(engine))  # what --json does with it, too
        laps.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(laps), "max_ms": max(laps)}


def time_cli(database_uri: str, argv: list[str]) -> float:
    """One `broker inspect ... --json` subprocess, wall clock (interpreter start-up too)."""
    env = {**os.environ, "DATABASE_URI": database_uri}
    command = [sys.executable, "-m", "broker", "inspect", *argv, "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    json.loads(done.stdout)  # it printed a whole JSON document
    return elapsed


# -- EXPLAIN --------------------------------------------------------------------------


async def captured(engine: AsyncEngine, view: View) -> list[tuple[str, Any]]:
    """The statements (and their parameters) a view sends, as it sends them."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await view(engine)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    return seen


async def explain(engine: AsyncEngine, statement: str, parameters: Any) -> str:
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
        return "\n".join(row[0] for row in result.all())


def seq_scans(plan: str) -> list[str]:
    return [t for t in BIG_TABLES if f"Seq Scan on {t} " in plan]


async def show_plans(engine: AsyncEngine, name: str, view: View) -> list[str]:
    """Print each statement behind `name` with its plan; the big tables it seq-scans."""
    flagged: list[str] = []
    for statement, parameters in await captured(engine, view):
        plan = await explain(engine, statement, parameters)
        say(f"\n--- {name}: {' '.join(statement.split())}\n{plan}")
        flagged += [f"{name}: {t}" for t in seq_scans(plan)]
    return flagged


# -- the run --------------------------------------------------------------------------


async def bench(checkpoints: int, per_thread: int, repeat: int) -> dict[str, Any]:
    services = ensure_services(allow_containers=False)
    async with scratch_database(services.database_uri) as uri:
        engine = create_engine(Settings(DATABASE_URI=uri), pool_size=2)
        try:
            return await _measure(engine, uri, checkpoints, per_thread, repeat)
        finally:
            await engine.dispose()


async def _measure(
    engine: AsyncEngine, uri: str, checkpoints: int, per_thread: int, repeat: int
) -> dict[str, Any]:
    threads, per_thread = await fill(engine, checkpoints, per_thread)
    sizes = await table_sizes(engine)
    for table, size in sizes.items():
        say(f"{table:<18} {size['rows']:>12,} rows  {size['size']}")
    middle = thread_id_of(threads // 2)
    say(f"inspecting thread {middle} (clone {threads // 2} of {threads})")
    timings: dict[str, dict[str, float]] = {}
    for name, (view, argv) in views(middle, per_thread // 2).items():
        timing = await time_in_process(engine, view, repeat)
        timing["cli_ms"] = await asyncio.to_thread(time_cli, uri, argv)
        timings[name] = timing
        say(
            f"{name:<18} in-process {timing['median_ms']:7.2f} ms median "
            f"({timing['max_ms']:.2f} max)   CLI {timing['cli_ms']:7.0f} ms"
        )
    flagged: list[str] = []
    # `runs` too: unfiltered, it sorts the runs table (no index on created_at alone).
    for name in ("thread", "checkpoint", "checkpoint --step", "runs"):
        flagged += await show_plans(engine, name, views(middle, per_thread // 2)[name][0])
    say("\nsequential scans over checkpoint tables: " + (", ".join(flagged) or "none"))
    return {
        "threads": threads,
        "per_thread": per_thread,
        "sizes": sizes,
        "timings": timings,
        "seq_scans": flagged,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=1_000_000, help="rows to fill")
    parser.add_argument("--per-thread", type=int, default=100, help="checkpoints per thread")
    parser.add_argument("--repeat", type=int, default=20, help="in-process calls per view")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    result = asyncio.run(bench(args.checkpoints, args.per_thread, args.repeat))
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
