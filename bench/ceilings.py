"""The physical ceilings, measured on this machine in the same run as the servers.

- raw redis-py async pub/sub: one publisher pipelining N messages, one subscriber
  counting them: how many messages per second one Python reader can take in;
- asyncpg single-row commits: INSERT of one 1 KB row per transaction (autocommit),
  sequentially on one connection, and from 20 connections at once;
- asyncpg batched inserts: `executemany` of 1 KB rows, a batch per transaction;
- LangGraph itself: the streaming workloads' graphs driven by `astream` in this process,
  no server: how fast LangGraph produces custom events and messages-tuple tokens, which
  no server can forward faster (its callbacks, not the wire, bound the token rate).

Also `scratch_database()`: an empty database (no migrations), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse, urlunparse

import asyncpg
from langchain_core.messages import HumanMessage

from bench.graphs.tokens import graph as tokens_graph
from bench.harness import admin_sql, libpq_uri
from bench.stream import raw_pubsub
from tests.graphs.emitter import graph as emitter_graph

TIMEOUT = 120.0
ROW = "x" * 1024
CONNECTIONS = 20  # about what one broker process' engine keeps (BROKER_DB_POOL_SIZE 15)


@contextmanager
def scratch_database(admin_uri: str, label: str = "scratch") -> Iterator[str]:
    """A new empty database; dropped afterwards, whatever happens."""
    name = f"broker_bench_{label}_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_sql(admin_uri, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunparse(urlparse(libpq_uri(admin_uri))._replace(path=f"/{name}"))
    finally:
        asyncio.run(admin_sql(admin_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- Redis pub/sub ----------------------------------------------------------------------


async def pubsub_rate(redis_uri: str, messages: int, size: int) -> dict[str, float]:
    """Messages per second one redis-py async subscriber receives (first to last)."""
    raw = await raw_pubsub(redis_uri, messages, size, TIMEOUT)
    return {
        "messages": float(messages),
        "received": float(raw.received),
        "size": float(size),
        "per_second": raw.per_second,
    }


# -- Postgres -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _table(uri: str) -> AsyncIterator[str]:
    name = f"ceiling_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(uri)
    try:
        await connection.execute(f"CREATE TABLE {name} (id bigint, payload text)")
        yield name
    finally:
        await connection.execute(f"DROP TABLE IF EXISTS {name}")
        await connection.close()


async def commit_rate(uri: str, commits: int, connections: int = 1) -> dict[str, float]:
    """Single-row INSERT commits per second, over `connections` connections at once."""
    async with _table(uri) as table:
        pool: Any = await asyncpg.create_pool(uri, min_size=connections, max_size=connections)
        try:
            statement = f"INSERT INTO {table} (id, payload) VALUES ($1, $2)"
            share = commits // connections

            async def insert(offset: int) -> None:
                async with pool.acquire() as connection:
                    for index in range(offset, offset + share):
                        await connection.execute(statement, index, ROW)

            started = time.perf_counter()
            await asyncio.gather(*(insert(i * share) for i in range(connections)))
            seconds = time.perf_counter() - started
        finally:
            await pool.close()
    done = share * connections
    return {"commits": float(done), "connections": float(connections), "per_second": done / seconds}


async def batch_rate(uri: str, rows: int, batch: int) -> dict[str, float]:
    """Rows per second inserted with `executemany`, `batch` rows per transaction."""
    async with _table(uri) as table:
        connection = await asyncpg.connect(uri)
        try:
            statement = f"INSERT INTO {table} (id, payload) VALUES ($1, $2)"
            started = time.perf_counter()
            for offset in range(0, rows, batch):
                records = [(i, ROW) for i in range(offset, min(offset + batch, rows))]
                async with connection.transaction():
                    await connection.executemany(statement, records)
            seconds = time.perf_counter() - started
        finally:
            await connection.close()
    return {"rows": float(rows), "batch": float(batch), "per_second": rows / seconds}


# -- LangGraph in-process ---------------------------------------------------------------


async def langgraph_rate(graph: Any, graph_input: dict[str, Any], mode: str) -> dict[str, float]:
    """Chunks of `mode` per second (first to last) from `graph.astream`, best of 3."""
    best = 0.0
    count = 0
    for _ in range(3):
        count, first, last = 0, 0.0, 0.0
        async for chunk_mode, _chunk in graph.astream(graph_input, stream_mode=[mode, "values"]):
            if chunk_mode == mode:
                last = time.perf_counter()
                first = first or last
                count += 1
        best = max(best, (count - 1) / (last - first) if last > first else 0.0)
    return {"received": float(count), "per_second": best}


async def langgraph_rates(events: int, tokens: int, pad: int) -> dict[str, dict[str, float]]:
    emitter_input = {"count": events, "pad": pad, "pace": 1}
    tokens_input = {"messages": [HumanMessage("hi")], "tokens": tokens}
    return {
        "langgraph_custom": await langgraph_rate(emitter_graph, emitter_input, "custom"),
        "langgraph_tokens": await langgraph_rate(tokens_graph, tokens_input, "messages"),
    }


async def measure_all(
    redis_uri: str,
    database_uri: str,
    *,
    messages: int,
    size: int,
    commits: int,
    rows: int,
    events: int,
    tokens: int,
    pad: int,
) -> dict[str, dict[str, float]]:
    return {
        "pubsub": await pubsub_rate(redis_uri, messages, size),
        "commit_1": await commit_rate(database_uri, commits, 1),
        f"commit_{CONNECTIONS}": await commit_rate(database_uri, commits, CONNECTIONS),
        "batch_insert": await batch_rate(database_uri, rows, 500),
        **await langgraph_rates(events, tokens, pad),
    }
