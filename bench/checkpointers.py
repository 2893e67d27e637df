"""Our checkpointer against LangGraph's `AsyncPostgresSaver`, driving the same graph in-process.

Both get the same budget of connections (our engine: a pool of 20; theirs: a psycopg
pool of up to 20, autocommit, as LangGraph Platform configures it) and each its
own fresh database (their tables would collide with ours). Rounds alternate between the
savers so that drift on a noisy machine lands on all alike; the figure is the median.

Ours is measured twice: plain (`PostgresCheckpointer(engine)`, as the issue names it) and
fenced (`.fenced(run_id, attempt)`, one running run per invocation), which is how the
worker writes and goes through different SQL.

`AsyncPostgresSaver` comes from the `bench` extra (langgraph-checkpoint-postgres,
psycopg); without it, `Unavailable` says how to install it.
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from sqlalchemy import insert

from bench.graphs.steps import graph as steps_graph
from broker.settings import Settings
from broker.storage.checkpoints.postgres import PostgresCheckpointer
from broker.storage.engine import create_engine
from broker.storage.tables import runs, threads

POOL = 20
INSTALL_HINT = "pip install -e '.[bench]' (langgraph-checkpoint-postgres, psycopg)"


class Unavailable(Exception):
    pass


@asynccontextmanager
async def ours(database_uri: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """PostgresCheckpointer on our engine, on a database migrated to head."""
    engine = create_engine(Settings(DATABASE_URI=database_uri), pool_size=POOL)
    try:
        yield PostgresCheckpointer(engine)
    finally:
        await engine.dispose()


def _theirs_modules() -> tuple[Any, Any, Any]:
    try:
        saver = importlib.import_module("langgraph.checkpoint.postgres.aio")
        pool = importlib.import_module("psycopg_pool")
        rows = importlib.import_module("psycopg.rows")
    except ImportError as exc:
        raise Unavailable(f"AsyncPostgresSaver is not installed ({exc}); {INSTALL_HINT}") from exc
    return saver.AsyncPostgresSaver, pool.AsyncConnectionPool, rows.dict_row


def theirs_available() -> str | None:
    """None if AsyncPostgresSaver can be used, else why not."""
    try:
        _theirs_modules()
    except Unavailable as exc:
        return str(exc)
    return None


@asynccontextmanager
async def theirs(database_uri: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """AsyncPostgresSaver on a psycopg pool, on an empty database (it creates its tables)."""
    saver_class, pool_class, dict_row = _theirs_modules()
    pool = pool_class(
        database_uri,
        min_size=POOL // 2,
        max_size=POOL,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open()
    try:
        saver = saver_class(pool)
        await saver.setup()
        yield saver
    finally:
        await pool.close()


async def _running_runs(database_uri: str, count: int) -> list[uuid.UUID]:
    """`count` running runs (attempt 1), one per thread: what a fenced saver writes under."""
    engine = create_engine(Settings(DATABASE_URI=database_uri), pool_size=POOL)
    made = [(uuid.uuid4(), uuid.uuid4()) for _ in range(count)]
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(threads), [{"thread_id": t, "status": "busy"} for t, _ in made]
            )
            await conn.execute(
                insert(runs),
                [
                    {
                        "run_id": r,
                        "thread_id": t,
                        "assistant_id": uuid.uuid4(),
                        "status": "running",
                        "attempt": 1,
                    }
                    for t, r in made
                ],
            )
    finally:
        await engine.dispose()
    return [r for _, r in made]


async def _round(graphs: Sequence[Pregel[Any, Any]], runs: int, steps: int, size: int) -> float:
    """`runs` concurrent threaded invocations of `steps` supersteps; supersteps per second."""
    graph_input = {"steps": steps, "size": size}
    configs: list[RunnableConfig] = [
        {"configurable": {"thread_id": str(uuid.uuid4())}} for _ in range(runs)
    ]
    started = time.perf_counter()
    outputs = await asyncio.gather(
        *(graphs[i % len(graphs)].ainvoke(graph_input, c) for i, c in enumerate(configs))
    )
    seconds = time.perf_counter() - started
    if any(o.get("step") != steps for o in outputs):
        raise RuntimeError(f"a run ended early: {outputs[0]!r}")
    return runs * steps / seconds


async def compare(
    our_uri: str, their_uri: str, *, runs: int, steps: int, size: int, rounds: int
) -> dict[str, Any]:
    """Supersteps per second with each saver (median of `rounds`), and the ratio."""
    run_ids = await _running_runs(our_uri, runs)
    async with AsyncExitStack() as stack:
        plain = await stack.enter_async_context(ours(our_uri))
        assert isinstance(plain, PostgresCheckpointer)
        theirs_saver = await stack.enter_async_context(theirs(their_uri))
        variants: dict[str, list[Pregel[Any, Any]]] = {
            "ours": [steps_graph.copy(update={"checkpointer": plain})],
            "ours_fenced": [
                steps_graph.copy(update={"checkpointer": plain.fenced(run_id, 1)})
                for run_id in run_ids
            ],
            "theirs": [steps_graph.copy(update={"checkpointer": theirs_saver})],
        }
        for graphs in variants.values():  # warm-up: pools filled, statements prepared
            await _round(graphs, min(runs, 10), steps, size)
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for index in range(rounds):
            order = list(variants) if index % 2 == 0 else list(reversed(variants))
            for name in order:
                rates[name].append(await _round(variants[name], runs, steps, size))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "ours_supersteps_per_second": medians["ours"],
        "ours_fenced_supersteps_per_second": medians["ours_fenced"],
        "theirs_supersteps_per_second": medians["theirs"],
        "ratio": medians["ours"] / medians["theirs"],
        "fenced_ratio": medians["ours_fenced"] / medians["theirs"],
        **{f"{name}_rounds": [round(r, 1) for r in values] for name, values in rates.items()},
        "runs": runs,
        "steps": steps,
        "size": size,
    }
