"""A fenced PostgresCheckpointer writes only while its attempt still owns the running run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import BrokerError, LeaseLost
from broker.storage.checkpoints.postgres import PostgresCheckpointer
from broker.storage.tables import checkpoint_writes, checkpoints, runs, threads

# Bounds every wait on a lock, so a broken fence fails the test instead of hanging it.
LOCK_WAIT_SECONDS = 5.0
WRITES = [("messages", "hi"), ("counter", 1)]


async def _running_run(engine: AsyncEngine) -> uuid.UUID:
    """A thread and a run on it, claimed: status 'running', attempt 1."""
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


async def _set_run(engine: AsyncEngine, run_id: uuid.UUID, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))


async def _stored(engine: AsyncEngine, thread_id: str) -> tuple[int, int]:
    """How many checkpoints and pending writes the thread has."""
    counts = [
        select(func.count()).select_from(table).where(table.c.thread_id == thread_id)
        for table in (checkpoints, checkpoint_writes)
    ]
    async with engine.connect() as conn:
        stored = [(await conn.execute(count)).scalar_one() for count in counts]
    return stored[0], stored[1]


async def _put(saver: PostgresCheckpointer, config: RunnableConfig) -> RunnableConfig:
    return await saver.aput(config, generate_checkpoint(), generate_metadata(), {})


@pytest.fixture
async def run_id(engine: AsyncEngine) -> uuid.UUID:
    return await _running_run(engine)


@pytest.fixture
def fenced(engine: AsyncEngine, run_id: uuid.UUID) -> PostgresCheckpointer:
    return PostgresCheckpointer(engine).fenced(run_id, 1)


# -- (a) the fence holds ------------------------------------------------------


async def test_fenced_writes_land_while_the_claim_holds(
    engine: AsyncEngine, fenced: PostgresCheckpointer
) -> None:
    config = generate_config()
    saved = await _put(fenced, config)
    await fenced.aput_writes(saved, WRITES, task_id="task")

    loaded = await fenced.aget_tuple(saved)
    assert loaded is not None
    assert [(channel, value) for _, channel, value in loaded.pending_writes or []] == WRITES
    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 2)


async def test_parallel_tasks_share_the_fence(
    engine: AsyncEngine, fenced: PostgresCheckpointer
) -> None:
    # Parallel branches of one superstep write at once: their share locks coexist.
    config = generate_config()
    saved = await _put(fenced, config)
    async with asyncio.timeout(LOCK_WAIT_SECONDS):
        await asyncio.gather(
            *(fenced.aput_writes(saved, WRITES, task_id=f"task-{n}") for n in range(8))
        )
    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 16)


async def test_conformance_suite_passes_fenced(engine: AsyncEngine, run_id: uuid.UUID) -> None:
    # The fence looks only at the runs row, so the suite's arbitrary thread ids are fine.
    @checkpointer_test(name="PostgresCheckpointer.fenced")
    async def fresh_checkpointer() -> AsyncIterator[PostgresCheckpointer]:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE checkpoints, checkpoint_writes"))
        yield PostgresCheckpointer(engine).fenced(run_id, 1)

    report = await validate(fresh_checkpointer)

    failures = {name: result.failures for name, result in report.results.items() if result.failures}
    assert report.conformance_level() == "FULL", failures


async def test_fenced_is_a_copy_and_leaves_the_original_unfenced(
    engine: AsyncEngine, run_id: uuid.UUID
) -> None:
    plain = PostgresCheckpointer(engine)
    stale = plain.fenced(run_id, 0)
    with pytest.raises(LeaseLost):
        await _put(stale, generate_config())

    config = generate_config()
    await _put(plain, config)  # the API's own state updates are never fenced
    assert stale.serde is plain.serde
    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 0)


# -- (b), (c) the claim is gone -----------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"attempt": 2}, {"status": "success"}, {"status": "pending"}],
    ids=["taken-over", "finished", "handed-back"],
)
async def test_writes_are_refused_once_the_claim_is_gone(
    engine: AsyncEngine, run_id: uuid.UUID, fenced: PostgresCheckpointer, change: dict[str, Any]
) -> None:
    config = generate_config()
    saved = await _put(fenced, config)
    await _set_run(engine, run_id, **change)

    with pytest.raises(LeaseLost) as refused:
        await _put(fenced, saved)
    with pytest.raises(LeaseLost):
        await fenced.aput_writes(saved, WRITES, task_id="task")

    assert isinstance(refused.value, BrokerError) and refused.value.status_code == 409
    assert str(run_id) in refused.value.detail
    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 0)


async def test_the_new_attempt_writes_where_the_old_one_is_refused(
    engine: AsyncEngine, run_id: uuid.UUID, fenced: PostgresCheckpointer
) -> None:
    await _set_run(engine, run_id, attempt=2)
    config = generate_config()

    await _put(PostgresCheckpointer(engine).fenced(run_id, 2), config)

    with pytest.raises(LeaseLost):
        await _put(fenced, config)
    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 0)


# -- (d) a takeover racing a write ---------------------------------------------


async def _wait_for_lock_wait(engine: AsyncEngine) -> None:
    """Returns once a fenced statement is queued behind a row lock in this database."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND starts_with(query, 'WITH fence')"
    )
    # Autocommit: pg_stat_activity is read once per transaction, then frozen.
    polling = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with asyncio.timeout(LOCK_WAIT_SECONDS), polling.connect() as conn:
        while True:
            if (await conn.execute(waiting)).scalar_one():
                return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("takeover_commits", [True, False], ids=["commit", "rollback"])
async def test_a_write_racing_a_takeover_waits_for_it(
    engine: AsyncEngine, run_id: uuid.UUID, fenced: PostgresCheckpointer, takeover_commits: bool
) -> None:
    config = generate_config()
    async with engine.connect() as takeover:
        # The claim's UPDATE holds the run row's lock until it commits.
        await takeover.execute(update(runs).where(runs.c.run_id == run_id).values(attempt=2))
        write = asyncio.create_task(_put(fenced, config))
        await _wait_for_lock_wait(engine)
        assert not write.done()
        if takeover_commits:
            await takeover.commit()
        else:
            await takeover.rollback()

        async with asyncio.timeout(LOCK_WAIT_SECONDS):
            if takeover_commits:
                with pytest.raises(LeaseLost):
                    await write
            else:
                await write

    expected = (0, 0) if takeover_commits else (1, 0)
    assert await _stored(engine, config["configurable"]["thread_id"]) == expected


# -- (e) idempotent retries ----------------------------------------------------


async def test_an_identical_retry_is_not_a_refusal(
    engine: AsyncEngine, fenced: PostgresCheckpointer
) -> None:
    config = generate_config()
    checkpoint, metadata = generate_checkpoint(), generate_metadata()
    saved = await fenced.aput(config, checkpoint, metadata, {})
    await fenced.aput_writes(saved, WRITES, task_id="task")

    # Regular writes are first-wins: every row of the retry hits ON CONFLICT DO NOTHING.
    await fenced.aput_writes(saved, WRITES, task_id="task")
    await fenced.aput(config, checkpoint, metadata, {})

    assert await _stored(engine, config["configurable"]["thread_id"]) == (1, 2)


async def test_an_empty_write_batch_needs_no_fence(
    run_id: uuid.UUID, fenced: PostgresCheckpointer, engine: AsyncEngine
) -> None:
    await _set_run(engine, run_id, attempt=2)
    await fenced.aput_writes(generate_config(), [], task_id="task")  # nothing to refuse


# -- (f) a real graph loses its lease mid-run ----------------------------------


class Counter(TypedDict):
    count: int


def _graph(
    saver: PostgresCheckpointer, engine: AsyncEngine, run_id: uuid.UUID
) -> CompiledStateGraph[Any, Any, Any, Any]:
    async def count(state: Counter) -> Counter:
        return {"count": state["count"] + 1}

    async def stall(state: Counter) -> Counter:
        # Meanwhile the sweeper hands the run to another worker.
        await _set_run(engine, run_id, attempt=2)
        return {"count": state["count"] + 1}

    builder = StateGraph(Counter).add_node("first", count).add_node("stall", stall)
    builder.add_node("last", count)
    builder.add_edge(START, "first").add_edge("first", "stall").add_edge("stall", "last")
    return builder.add_edge("last", END).compile(checkpointer=saver)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_a_graph_whose_lease_is_lost_mid_run_raises(
    engine: AsyncEngine,
    run_id: uuid.UUID,
    fenced: PostgresCheckpointer,
    durability: Literal["sync", "async", "exit"],
) -> None:
    graph = _graph(fenced, engine, run_id)
    thread_id = str(uuid.uuid4())
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}

    with pytest.raises(LeaseLost):
        await graph.ainvoke({"count": 0}, config, durability=durability)

    history = [t async for t in fenced.alist(config)]
    steps = [t.metadata.get("step") for t in history]
    # Nothing written after the takeover: at most the checkpoints up to "first".
    assert all(step is not None and step <= 1 for step in steps), steps
    counts = [t.checkpoint["channel_values"].get("count") for t in history]
    counts += [
        value for t in history for _, channel, value in t.pending_writes or [] if channel == "count"
    ]
    assert all(value is None or value <= 1 for value in counts), counts
