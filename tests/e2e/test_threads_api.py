"""The threads API as a LangGraph Platform user calls it: every method of the SDK's
`client.threads` (create with graph_id, supersteps and ttl; update; prune; join_stream)."""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError
from langgraph_sdk.schema import StreamPart
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import checkpoints
from tests.e2e.helpers import SLOW_LIMIT, state_dict, thread_dict

# `stream` opens the v2 thread-centric protocol (POST /threads/{id}/...): a separate issue.
NOT_HERE = {"stream"}

SUPERSTEPS: list[dict[str, Any]] = [
    {"updates": [{"values": {"count": 1, "log": ["a"]}, "as_node": "one"}]},
    {"updates": [{"values": {"count": 5, "log": ["b"]}, "as_node": "two"}]},
]


def test_every_threads_method_is_exercised() -> None:
    client = get_client(url="http://unused", api_key=None)
    methods = {
        name
        for name, _ in inspect.getmembers(client.threads, inspect.ismethod)
        if not name.startswith("_")
    }
    called = set(re.findall(r"client\.threads\.(\w+)\(", Path(__file__).read_text()))
    assert methods - NOT_HERE - called == set()


# -- create ---------------------------------------------------------------------------


async def test_create_with_graph_id_supersteps_and_ttl(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="counter", supersteps=SUPERSTEPS, ttl=30)
    tid = thread["thread_id"]
    assert dict(thread["metadata"] or {})["graph_id"] == "counter"
    assert "ttl" not in thread
    state: dict[str, Any] = dict(await client.threads.get_state(tid))
    assert state["values"] == {"count": 5, "log": ["a", "b"]}
    assert (await thread_dict(client, tid))["values"] == state["values"]
    history: list[Any] = await client.threads.get_history(tid, limit=10)
    assert [h["values"]["count"] for h in history] == [5, 1]
    shown: dict[str, Any] = dict(await client.threads.get(tid, include=["ttl"]))
    assert shown["ttl"]["strategy"] == "delete"
    assert shown["ttl"]["ttl_minutes"] == 30
    assert shown["ttl"]["expires_at"] > shown["created_at"]


async def test_supersteps_need_a_graph_and_valid_nodes(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    with pytest.raises(BadRequestError, match="graph_id"):
        await client.threads.create(thread_id=tid, supersteps=SUPERSTEPS)
    bad: list[dict[str, Any]] = [{"updates": [{"values": {"count": 1}, "as_node": "nowhere"}]}]
    with pytest.raises(BadRequestError, match="supersteps"):
        await client.threads.create(thread_id=tid, graph_id="counter", supersteps=bad)
    with pytest.raises(NotFoundError):  # nothing half-built is left
        await client.threads.get(tid)


async def test_if_exists_both_ways(client: LangGraphClient) -> None:
    first = await client.threads.create(metadata={"n": 1})
    tid = first["thread_id"]
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=tid, if_exists="raise")
    again = await client.threads.create(thread_id=tid, metadata={"n": 2}, if_exists="do_nothing")
    assert again["thread_id"] == tid
    assert again["metadata"] == {"n": 1}


@pytest.mark.parametrize("if_exists", ["raise", "do_nothing"])
async def test_concurrent_creates_of_one_id(client: LangGraphClient, if_exists: str) -> None:
    tid = str(uuid.uuid4())
    results = await asyncio.gather(
        *(client.threads.create(thread_id=tid, if_exists=if_exists) for _ in range(30)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert len(created) + len(refused) == 30, results
    assert all(r["thread_id"] == tid for r in created)
    assert len(created) == (1 if if_exists == "raise" else 30)


# -- update, prune and the rest -------------------------------------------------------


async def test_update_with_ttl(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    assert (await client.threads.get(tid, include=["ttl"]))["ttl"] is None  # type: ignore[typeddict-item]
    await client.threads.update(tid, metadata={"k": "v"}, ttl={"ttl": 5, "strategy": "keep_latest"})
    shown: dict[str, Any] = dict(await client.threads.get(tid, include=["ttl"]))
    assert shown["metadata"] == {"k": "v"}
    assert shown["ttl"]["strategy"] == "keep_latest"
    assert shown["ttl"]["ttl_minutes"] == 5


async def test_prune_delete(client: LangGraphClient) -> None:
    a, b = await client.threads.create(), await client.threads.create()
    run = await client.runs.create(b["thread_id"], "slow", input={"steps": 50, "delay": 0.1})
    pruned = await client.threads.prune([a["thread_id"], b["thread_id"], str(uuid.uuid4())])
    assert pruned == {"pruned_count": 2}
    for thread in (a, b):
        with pytest.raises(NotFoundError):
            await client.threads.get(thread["thread_id"])
    with pytest.raises(NotFoundError):  # its run went with it
        await client.runs.get(b["thread_id"], run["run_id"])


async def test_prune_keep_latest(client: LangGraphClient, engine: AsyncEngine) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input={"count": 0, "log": []})
    before = await state_dict(client, tid)
    assert await _checkpoints(engine, tid) > 1
    pruned = await client.threads.prune([tid], strategy="keep_latest")
    assert pruned == {"pruned_count": 1}
    assert await _checkpoints(engine, tid) == 1
    after = await state_dict(client, tid)
    assert after["values"] == before["values"] == {"count": 111, "log": ["one", "two", "three"]}


async def _checkpoints(engine: AsyncEngine, tid: str) -> int:
    query = select(func.count()).select_from(checkpoints).where(checkpoints.c.thread_id == tid)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_search_count_copy_delete(client: LangGraphClient) -> None:
    tag = str(uuid.uuid4())
    thread = await client.threads.create(metadata={"tag": tag})
    tid = thread["thread_id"]
    found = await client.threads.search(metadata={"tag": tag})
    assert [t["thread_id"] for t in found] == [tid]
    assert await client.threads.count(metadata={"tag": tag}) == 1
    await client.threads.copy(tid)  # the SDK types it None (the server answers the copy)
    await client.threads.delete(tid)
    assert await client.threads.count(metadata={"tag": tag}) == 1


# -- join_stream ----------------------------------------------------------------------


async def _collect(parts: AsyncIterator[StreamPart], into: asyncio.Queue[StreamPart]) -> None:
    async for part in parts:
        into.put_nowait(part)


async def _until_done(events: asyncio.Queue[StreamPart], runs: int) -> list[StreamPart]:
    """Events until `runs` run_done events came (bounded in time)."""
    seen: list[StreamPart] = []
    async with asyncio.timeout(SLOW_LIMIT):
        while sum(p.event == "run_done" for p in seen) < runs:
            seen.append(await events.get())
    return seen


async def _joined(
    client: LangGraphClient,
    tid: str,
    stream_mode: Any = "run_modes",
    last_event_id: str | None = None,
) -> tuple[asyncio.Queue[StreamPart], asyncio.Task[None]]:
    events: asyncio.Queue[StreamPart] = asyncio.Queue()
    parts = await client.threads.join_stream(
        tid, stream_mode=stream_mode, last_event_id=last_event_id
    )
    return events, asyncio.create_task(_collect(parts, events))


async def test_join_stream_two_runs(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"steps": 8, "delay": 0.1})
    events, task = await _joined(client, tid)
    second = await client.runs.create(tid, "slow", input={"steps": 9, "delay": 0.01})
    try:
        seen = await _until_done(events, 2)
    finally:
        task.cancel()
    done = [p.data for p in seen if p.event == "run_done"]
    assert done == [
        {"run_id": first["run_id"], "status": "success"},
        {"run_id": second["run_id"], "status": "success"},
    ]
    started = [p.data["run_id"] for p in seen if p.event == "metadata"]
    assert started[-1] == second["run_id"]
    assert any(p.event == "values" and p.data.get("done") == 9 for p in seen)


async def test_join_stream_lifecycle_only(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"steps": 8, "delay": 0.1})
    events, task = await _joined(client, tid, "lifecycle")
    second = await client.runs.create(tid, "slow", input={"steps": 9, "delay": 0.01})
    try:
        seen = await _until_done(events, 2)
    finally:
        task.cancel()
    assert {p.event for p in seen} <= {"metadata", "run_done"}
    assert [(p.event, p.data["run_id"]) for p in seen][-2:] == [
        ("metadata", second["run_id"]),
        ("run_done", second["run_id"]),
    ]
    assert seen[0].data["run_id"] == first["run_id"]


async def test_join_stream_state_update(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="counter")
    tid = thread["thread_id"]
    events, task = await _joined(client, tid, ["state_update"])
    try:
        # Edits until the joiner (subscribing meanwhile) hears one: each is announced once.
        async with asyncio.timeout(SLOW_LIMIT):
            count = 0
            while events.empty():
                count += 1
                await client.threads.update_state(tid, {"count": count}, as_node="one")
                await asyncio.sleep(0.1)
            part = await events.get()
    finally:
        task.cancel()
    assert part.event == "values"
    assert part.data["count"] in range(1, count + 1)


async def test_join_stream_from_second_api_process(
    production_client: LangGraphClient, second_server: str
) -> None:
    thread = await production_client.threads.create()
    tid = thread["thread_id"]
    run = await production_client.runs.create(tid, "slow", input={"steps": 8, "delay": 0.1})
    other = get_client(url=second_server, api_key=None)
    try:
        events, task = await _joined(other, tid)
        try:
            seen = await _until_done(events, 1)
        finally:
            task.cancel()
    finally:
        await other.aclose()
    assert seen[-1].data == {"run_id": run["run_id"], "status": "success"}


async def test_join_stream_replays_resumable_runs_from_last_event_id(
    client: LangGraphClient,
) -> None:
    tid = (await client.threads.create())["thread_id"]
    slow = {"steps": 8, "delay": 0.05}
    parts = client.runs.stream(tid, "slow", input=slow, stream_resumable=True)
    seen = [p async for p in parts]
    ids = [p.id for p in seen if p.event == "values"]
    assert all(ids) and len(ids) == 9  # the input, then one per step

    # From the start ("-"): every frame of the run, then its run_done.
    events, task = await _joined(client, tid, last_event_id="-")
    try:
        replayed = await _until_done(events, 1)
    finally:
        task.cancel()
    assert [p.data["done"] for p in replayed if p.event == "values" and "done" in p.data] == list(
        range(1, 9)
    )
    assert replayed[-1].event == "run_done"

    # From the middle: only what came after that event, nothing twice.
    events, task = await _joined(client, tid, last_event_id=ids[4])
    try:
        rest = await _until_done(events, 1)
    finally:
        task.cancel()
    values = [p for p in rest if p.event == "values"]
    assert [p.id for p in values] == ids[5:]
    assert "metadata" not in [p.event for p in rest]


async def test_join_stream_refuses_a_malformed_last_event_id(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    with pytest.raises(BadRequestError):
        async for _ in await client.threads.join_stream(tid, last_event_id="not-an-id"):
            pass


async def test_join_stream_of_missing_thread_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        async for _ in await client.threads.join_stream(str(uuid.uuid4())):
            pass
