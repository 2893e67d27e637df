"""Runs through the real SDK: threaded and stateless, stream and wait, errors, ordering."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import checkpoint_writes, checkpoints, runs, threads

# Also behind PgBouncer, and on a Redis Cluster (tests/e2e/conftest.py).
pytestmark = [pytest.mark.pooled, pytest.mark.cluster]

COUNTER: dict[str, Any] = {"count": 0, "log": []}


async def _count(engine: AsyncEngine, table: Any, **where: object) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_stream_values_and_updates_interleave(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            thread["thread_id"], "counter", input=COUNTER, stream_mode=["values", "updates"]
        )
    ]
    events = [p.event for p in parts]
    assert events == ["metadata"] + ["values", "updates"] * 3 + ["values"]
    assert [p.data["count"] for p in parts if p.event == "values"] == [0, 1, 11, 111]
    assert [next(iter(p.data)) for p in parts if p.event == "updates"] == ["one", "two", "three"]


async def test_threaded_run_checkpoints_match_state(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER)
    state = await client.threads.get_state(tid)
    assert state["values"] == {"count": 111, "log": ["one", "two", "three"]}
    assert state["next"] == []
    async with engine.connect() as conn:
        query = (
            select(checkpoints.c.step, checkpoints.c["values"])
            .where(checkpoints.c.thread_id == tid, checkpoints.c.checkpoint_ns == "")
            .order_by(checkpoints.c.checkpoint_id)
        )
        rows = (await conn.execute(query)).all()
    # one checkpoint per superstep: the input (-1), then 0..3 for START and three nodes
    assert [r.step for r in rows] == [-1, 0, 1, 2, 3]
    assert rows[-1].values == state["values"]
    history: list[Any] = await client.threads.get_history(tid, limit=10)
    assert [h["values"].get("count") for h in history] == [111, 11, 1, 0, None]
    # every checkpoint's readable JSONB is the state the SDK sees at that checkpoint
    # (the input checkpoint, step -1, holds the raw input under "__start__")
    assert [r.values for r in rows[1:]] == [h["values"] for h in reversed(history[:-1])]
    assert rows[0].values == {"__start__": COUNTER}


async def test_stateless_run_leaves_no_checkpoint(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    before = (await _count(engine, checkpoints), await _count(engine, checkpoint_writes))
    parts = [
        p async for p in client.runs.stream(None, "counter", input=COUNTER, stream_mode="updates")
    ]
    assert [p.event for p in parts] == ["metadata", "updates", "updates", "updates"]
    run_id = parts[0].data["run_id"]
    after = (await _count(engine, checkpoints), await _count(engine, checkpoint_writes))
    assert after == before
    assert (
        await _count(engine, runs, run_id=uuid.UUID(run_id)) == 0
    )  # temporary thread deleted with it


async def test_wait_returns_final_values(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "counter", input=COUNTER)
    assert result == {"count": 111, "log": ["one", "two", "three"]}
    stateless = await client.runs.wait(None, "counter", input={"count": 5, "log": []})
    assert stateless == {"count": 116, "log": ["one", "two", "three"]}


async def test_graph_error_fails_run_and_thread(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    parts = [p async for p in client.runs.stream(tid, "failing", input={"value": "x"})]
    assert [p.event for p in parts] == ["metadata", "values", "values", "error"]
    assert parts[-1].data == {"error": "ValueError", "message": "cannot handle 'x!'"}
    run = (await client.runs.list(tid))[0]
    assert run["status"] == "error"
    stored: dict[str, Any] = dict(await client.threads.get(tid))
    assert stored["status"] == "error"
    assert stored["error"] == {"error": "ValueError", "message": "cannot handle 'x!'"}
    with pytest.raises(Exception, match="ValueError: cannot handle"):
        await client.runs.wait(tid, "failing", input={"value": "x"})


async def test_enqueued_runs_on_one_thread_never_overlap(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first = await client.runs.create(tid, "slow", input={"steps": 3, "delay": 0.1})
    second = await client.runs.create(tid, "slow", input={"steps": 1, "delay": 0.1})
    assert (first["status"], second["status"]) == ("pending", "pending")
    assert (await client.threads.get(tid))["status"] == "busy"
    await _wait_for_status(client, tid, second["run_id"], "success")
    runs_ = {r["run_id"]: r for r in await client.runs.list(tid)}
    assert runs_[first["run_id"]]["status"] == "success"
    state: dict[str, Any] = dict(await client.threads.get_state(tid))
    # the second run continued the first one's state: 3 ticks, then one more
    assert state["values"]["done"] == 4
    assert (await client.threads.get(tid))["status"] == "idle"


async def _wait_for_status(client: LangGraphClient, tid: str, rid: str, status: str) -> None:
    for _ in range(200):
        if (await client.runs.get(tid, rid))["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {rid} never reached {status}")


async def test_stream_headers_and_heartbeat(server: str) -> None:
    tid = str(uuid.uuid4())
    body = {"assistant_id": "slow", "input": {"steps": 1, "delay": 1.2}, "if_not_exists": "create"}
    async with (
        httpx.AsyncClient(base_url=server) as http,
        http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response,
    ):
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    run_id = response.headers["content-location"].rsplit("/", 1)[1]
    assert response.headers["content-location"] == f"/threads/{tid}/runs/{run_id}"
    assert response.headers["location"] == f"/threads/{tid}/runs/{run_id}/stream"
    assert response.headers["cache-control"] == "no-store"
    assert raw.startswith(b'event: metadata\r\ndata: {"run_id":"' + run_id.encode())
    assert b": heartbeat\r\n\r\n" in raw
    assert raw.endswith(b"\r\n\r\n")


async def test_stateless_stream_headers(server: str) -> None:
    body = {"assistant_id": "counter", "input": COUNTER}
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post("/runs/stream", json=body)
    run_id = response.headers["content-location"].rsplit("/", 1)[1]
    assert response.headers["content-location"] == f"/runs/{run_id}"
    assert response.headers["location"] == f"/runs/{run_id}/stream"


async def test_wait_sends_keepalive_newlines(server: str) -> None:
    body = {"assistant_id": "slow", "input": {"steps": 1, "delay": 1.2}}
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post("/runs/wait", json=body)
    assert response.status_code == 200
    assert response.content.startswith(b"\n")
    assert response.json()["done"] == 1
    assert response.headers["location"].endswith("/join")


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/threads/{missing}/runs/stream", {"assistant_id": "counter"}, 404, "not found"),
        ("/threads/{tid}/runs/stream", {"assistant_id": "nope"}, 422, "Invalid assistant: 'nope'"),
        ("/threads/{tid}/runs/wait", {"assistant_id": 5}, 422, "assistant_id"),
        ("/threads/{tid}/runs", {"assistant_id": "counter", "stream_mode": "bogus"}, 422, "bogus"),
        ("/threads/not-a-uuid/runs/stream", {"assistant_id": "counter"}, 422, "thread_id"),
        ("/runs/wait", {"input": {}}, 422, "assistant_id"),
    ],
)
async def test_bad_input_is_rejected_and_leaves_no_row(
    server: str,
    client: LangGraphClient,
    engine: AsyncEngine,
    path: str,
    body: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    thread = await client.threads.create()
    url = path.format(missing=uuid.uuid4(), tid=thread["thread_id"])
    before = (await _count(engine, runs), await _count(engine, threads))
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post(url, json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert (await _count(engine, runs), await _count(engine, threads)) == before


async def test_malformed_json_is_422(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post(
            "/runs/wait", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Invalid JSON in request body")


async def test_sdk_maps_errors(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))
    with pytest.raises(UnprocessableEntityError):
        await client.runs.create(None, "no-such-graph", input={})
    # the SDK's wait raises httpx's error (not its own) for a refused request
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(None, "no-such-graph", input={})
    assert refused.value.response.status_code == 422
