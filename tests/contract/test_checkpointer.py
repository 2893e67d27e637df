"""Both checkpointers against LangGraph's conformance suite, plus the readable JSON columns.

Each test runs on Postgres (PostgresCheckpointer) and on SQLite (SqliteCheckpointer, on
`broker dev`'s engine), which store the same rows in the same tables.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
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
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import migrate
from broker.jsonable import to_jsonable
from broker.storage.checkpoints.postgres import PostgresCheckpointer
from broker.storage.checkpoints.sqlite import SqliteCheckpointer
from broker.storage.sqlite import create_sqlite_engine
from broker.storage.tables import checkpoint_writes, checkpoints

Saver = PostgresCheckpointer | SqliteCheckpointer


@asynccontextmanager
async def sqlite_engine(directory: Path) -> AsyncIterator[AsyncEngine]:
    """`broker dev`'s engine on a fresh SQLite file, migrated to head."""
    path = directory / "cp.sqlite3"
    await asyncio.to_thread(migrate.upgrade, f"sqlite+aiosqlite:///{path}")
    engine = create_sqlite_engine(path)
    try:
        yield engine
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Backend:
    name: str
    engine: AsyncEngine

    def saver(self) -> Saver:
        if self.name == "sqlite":
            return SqliteCheckpointer(self.engine)
        return PostgresCheckpointer(self.engine)

    async def truncate(self) -> None:
        async with self.engine.begin() as conn:
            if self.name == "sqlite":
                await conn.execute(delete(checkpoints))
                await conn.execute(delete(checkpoint_writes))
            else:
                await conn.execute(text("TRUNCATE checkpoints, checkpoint_writes"))


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with sqlite_engine(tmp_path) as engine:
        yield engine


@pytest.fixture(params=["postgres", "sqlite"])
def checkpointer_backend(request: pytest.FixtureRequest) -> Backend:
    # Looked up by name so that each backend sets up only its own database.
    engine = request.getfixturevalue("engine" if request.param == "postgres" else "sqlite")
    return Backend(request.param, engine)


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


def _graph(saver: Saver) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State).add_node("greet", _greet).add_node("reply", _reply)
    builder.add_edge(START, "greet").add_edge("greet", "reply").add_edge("reply", END)
    return builder.compile(checkpointer=saver)


async def test_conformance_suite_passes_every_capability(checkpointer_backend: Backend) -> None:
    @checkpointer_test(name=type(checkpointer_backend.saver()).__name__)
    async def fresh_checkpointer() -> AsyncIterator[Saver]:
        await checkpointer_backend.truncate()
        yield checkpointer_backend.saver()

    report = await validate(fresh_checkpointer)

    failures = {name: result.failures for name, result in report.results.items() if result.failures}
    assert set(report.results) == {capability.value for capability in ALL_CAPABILITIES}, (
        report.to_dict()
    )
    for name, result in report.results.items():
        assert result.detected, f"{name} not implemented"
        assert result.passed is True and result.tests_failed == 0, f"{name} failed: {failures}"
    assert report.conformance_level() == "FULL", failures


async def test_values_column_is_readable_state(checkpointer_backend: Backend) -> None:
    engine = checkpointer_backend.engine
    graph = _graph(checkpointer_backend.saver())
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


async def test_delete_for_runs_deletes_only_that_run(checkpointer_backend: Backend) -> None:
    engine, saver = checkpointer_backend.engine, checkpointer_backend.saver()
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


async def test_get_tuple_without_a_namespace_reads_the_root_graph(
    checkpointer_backend: Backend,
) -> None:
    saver = checkpointer_backend.saver()
    thread_id = str(uuid.uuid4())
    root = generate_checkpoint()
    await saver.aput(generate_config(thread_id), root, generate_metadata(), {})
    inner: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "sub:1"}}
    await saver.aput(inner, generate_checkpoint(), generate_metadata(), {})  # newer

    found = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
    assert found is not None and found.checkpoint["id"] == root["id"]
    listed = [t async for t in saver.alist({"configurable": {"thread_id": thread_id}})]
    assert len(listed) == 2  # a listing without a namespace spans them all


async def test_put_survives_nul_and_unrenderable_values(checkpointer_backend: Backend) -> None:
    engine, saver = checkpointer_backend.engine, checkpointer_backend.saver()
    odd = {"nul": "a\x00b", "escaped": "\\u0000", "tuple_keys": {(1, 2): "x"}}
    versions: ChannelVersions = {name: 1 for name in odd}
    checkpoint = generate_checkpoint(channel_values=odd, channel_versions=versions)
    started = datetime(2024, 1, 2, tzinfo=UTC)
    config = generate_config()
    stored = await saver.aput(config, checkpoint, generate_metadata(started=started), versions)

    loaded = await saver.aget_tuple(stored)
    assert loaded is not None
    assert loaded.checkpoint["channel_values"] == odd
    assert loaded.metadata.get("started") == started  # JSON alone would return a string
    query = select(checkpoints.c["values"], checkpoints.c.metadata).where(
        checkpoints.c.thread_id == config["configurable"]["thread_id"]
    )
    async with engine.connect() as conn:
        rendered, readable_metadata = (await conn.execute(query)).one()
    assert rendered == {"nul": "ab", "escaped": "\\u0000", "tuple_keys": "{(1, 2): 'x'}"}
    assert readable_metadata["started"] == "2024-01-02T00:00:00+00:00"


# Metadata the filter cases below look into; "b" differs from "a" in type or nesting only.
FILTERED: dict[str, dict[str, Any]] = {
    "a": {"flag": True, "n": 1, "none": None, "nested": {"x": 1, "y": [1, 2]}, "tags": ["t", "u"]},
    "b": {"flag": False, "n": 1.5, "nested": {"x": "1"}, "tags": [["t"]], 'odd key."$': 1},
}


@pytest.mark.parametrize(
    ("metadata_filter", "expected"),
    [
        pytest.param({"flag": True}, {"a"}, id="bool"),
        pytest.param({"flag": 1}, set(), id="true-is-not-1"),
        pytest.param({"n": 1.0}, {"a"}, id="1.0-is-1"),
        pytest.param({"none": None}, {"a"}, id="null-is-not-missing"),
        pytest.param({"nested": {"x": 1}}, {"a"}, id="object-subset"),
        pytest.param({"nested": {"y": [2]}}, {"a"}, id="array-subset"),
        pytest.param({"tags": ["u", "t"]}, {"a"}, id="array-any-order"),
        pytest.param({"tags": [["t"]]}, {"b"}, id="array-in-array"),
        pytest.param({"nested": {}}, {"a", "b"}, id="empty-object"),
        pytest.param({"nested": {"x": "1"}, "n": 1.5}, {"b"}, id="every-key"),
        pytest.param({'odd key."$': 1}, {"b"}, id="odd-key"),
        pytest.param({"label": {"a": 1}}, set(), id="string-is-no-object"),
        pytest.param({"label": ["a"]}, set(), id="string-is-no-array"),
        pytest.param({"label": "a", "missing": None}, set(), id="missing-key"),
    ],
)
async def test_metadata_filters_mean_json_containment(
    checkpointer_backend: Backend, metadata_filter: dict[str, Any], expected: set[str]
) -> None:
    # Postgres answers with JSONB's `@>`; SQLite must give the same answers.
    saver = checkpointer_backend.saver()
    config = generate_config()
    for label, metadata in FILTERED.items():
        checkpoint = generate_checkpoint()
        await saver.aput(config, checkpoint, generate_metadata(label=label, **metadata), {})

    found = saver.alist(config, filter=metadata_filter)
    assert {t.metadata.get("label") async for t in found} == expected
