"""PostgresCheckpointer against LangGraph's conformance suite, plus the readable JSONB columns."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.jsonable import to_jsonable
from broker.storage.checkpointer import PostgresCheckpointer
from broker.storage.tables import checkpoint_writes, checkpoints


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    counter: int


def _greet(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage("hello")], "counter": state["counter"] + 1}


def _reply(state: State) -> dict[str, Any]:
    return {
        "messages": [AIMessage(f"count is {state['counter']}")],
        "counter": state["counter"] + 1,
    }


def _graph(saver: PostgresCheckpointer) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State).add_node("greet", _greet).add_node("reply", _reply)
    builder.add_edge(START, "greet").add_edge("greet", "reply").add_edge("reply", END)
    return builder.compile(checkpointer=saver)


async def _truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE checkpoints, checkpoint_writes"))


async def test_conformance_suite_passes_every_capability(engine: AsyncEngine) -> None:
    @checkpointer_test(name="PostgresCheckpointer")
    async def fresh_checkpointer() -> AsyncIterator[PostgresCheckpointer]:
        await _truncate(engine)
        yield PostgresCheckpointer(engine)

    report = await validate(fresh_checkpointer)

    failures = {name: result.failures for name, result in report.results.items() if result.failures}
    assert set(report.results) == {capability.value for capability in ALL_CAPABILITIES}, (
        report.to_dict()
    )
    for name, result in report.results.items():
        assert result.detected, f"{name} not implemented"
        assert result.passed is True and result.tests_failed == 0, f"{name} failed: {failures}"
    assert report.conformance_level() == "FULL", failures


async def test_values_column_is_readable_state(engine: AsyncEngine) -> None:
    graph = _graph(PostgresCheckpointer(engine))
    thread_id = str(uuid.uuid4())
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}

    await graph.ainvoke({"messages": [HumanMessage("hi")], "counter": 0}, config)

    query = (
        select(checkpoints.c.step, checkpoints.c["values"])
        .where(checkpoints.c.thread_id == thread_id)
        .order_by(checkpoints.c.checkpoint_id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    state = await graph.aget_state(config)
    steps = [row.step for row in rows]
    assert steps == sorted(set(steps)) and len(steps) == 4, steps
    assert rows[-1].values == to_jsonable(state.values)
    assert [m["content"] for m in rows[-1].values["messages"]] == ["hi", "hello", "count is 1"]
    assert rows[-1].values["counter"] == 2


async def test_delete_for_runs_deletes_only_that_run(engine: AsyncEngine) -> None:
    saver = PostgresCheckpointer(engine)
    graph = _graph(saver)
    thread_id = str(uuid.uuid4())
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for run_id in (first, second):
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id},
            "metadata": {"run_id": run_id},
        }
        await graph.ainvoke({"messages": [HumanMessage(run_id)], "counter": 0}, config)

    thread: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    before = [t async for t in saver.alist(thread)]
    assert {t.metadata["run_id"] for t in before} == {first, second}

    await saver.adelete_for_runs([first])

    remaining = [t async for t in saver.alist(thread)]
    assert [t for t in before if t.metadata["run_id"] == second] == remaining
    kept_ids = {t.config["configurable"]["checkpoint_id"] for t in remaining}
    async with engine.connect() as conn:
        written = await conn.execute(
            select(checkpoint_writes.c.checkpoint_id).where(
                checkpoint_writes.c.thread_id == thread_id
            )
        )
        assert {row.checkpoint_id for row in written} <= kept_ids


async def test_put_survives_nul_and_unrenderable_values(engine: AsyncEngine) -> None:
    saver = PostgresCheckpointer(engine)
    odd = {"nul": "a\x00b", "escaped": "\\u0000", "tuple_keys": {(1, 2): "x"}}
    versions: ChannelVersions = {name: 1 for name in odd}
    checkpoint = generate_checkpoint(channel_values=odd, channel_versions=versions)
    started = datetime(2024, 1, 2, tzinfo=UTC)
    config = generate_config()
    stored = await saver.aput(config, checkpoint, generate_metadata(started=started), versions)

    loaded = await saver.aget_tuple(stored)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == odd
    assert loaded.metadata.get("started") == started  # JSONB alone would return a string
    query = select(checkpoints.c["values"], checkpoints.c.metadata).where(
        checkpoints.c.thread_id == config["configurable"]["thread_id"]
    )
    async with engine.connect() as conn:
        rendered, readable_metadata = (await conn.execute(query)).one()
    assert rendered == {"nul": "ab", "escaped": "\\u0000", "tuple_keys": "{(1, 2): 'x'}"}
    assert readable_metadata["started"] == "2024-01-02T00:00:00+00:00"
