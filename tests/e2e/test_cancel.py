"""Cancel (interrupt, rollback, wait, bulk), delete, and the multitask strategies."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import checkpoints, threads
from tests.e2e.helpers import state_dict, thread_dict, wait_for_progress, wait_for_status

# Also behind PgBouncer, and on a Redis Cluster (tests/e2e/conftest.py).
pytestmark = [pytest.mark.pooled, pytest.mark.cluster]

LONG: dict[str, Any] = {"steps": 40, "delay": 0.1}
COUNTER: dict[str, Any] = {"count": 0, "log": []}


async def _checkpoints_of(engine: AsyncEngine, run_id: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(checkpoints).where(checkpoints.c.run_id == run_id)
        return int((await conn.execute(query)).scalar_one())


async def _started(client: LangGraphClient, **input_: Any) -> tuple[str, str]:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input=input_ or LONG)
    await wait_for_progress(client, tid, 2)
    return tid, run["run_id"]


async def test_cancel_interrupt_stops_the_run_and_keeps_checkpoints(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    tid, rid = await _started(client)
    asked = time.monotonic()
    await client.runs.cancel(tid, rid)
    await wait_for_status(client, tid, rid, "interrupted")
    assert time.monotonic() - asked < 5.0  # the signal is pub/sub; the heartbeat is the fallback
    state = await state_dict(client, tid)
    assert 2 <= state["values"]["done"] < LONG["steps"]
    assert await _checkpoints_of(engine, rid) > 0
    thread = await thread_dict(client, tid)
    assert thread["status"] == "interrupted"  # the latest checkpoint still has a next node
    assert thread["error"] is None


async def test_cancel_rollback_deletes_the_run_and_its_checkpoints(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "slow", input={"steps": 1, "delay": 0})
    run = await client.runs.create(tid, "slow", input={"steps": 40, "delay": 0.1})
    await wait_for_progress(client, tid, 3)
    await client.runs.cancel(tid, run["run_id"], action="rollback")
    for _ in range(200):
        if (await thread_dict(client, tid))["status"] != "busy":
            break
        await asyncio.sleep(0.05)
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    assert await _checkpoints_of(engine, run["run_id"]) == 0
    state = await state_dict(client, tid)
    assert state["values"]["done"] == 1  # back to what the first run left
    assert (await thread_dict(client, tid))["status"] == "idle"


async def test_cancel_with_wait_returns_once_stopped(client: LangGraphClient, server: str) -> None:
    tid, rid = await _started(client)
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post(f"/threads/{tid}/runs/{rid}/cancel?wait=1", timeout=30)
    assert response.status_code == 200
    assert response.json()["done"] >= 2
    assert (await client.runs.get(tid, rid))["status"] == "interrupted"


async def test_cancel_pending_run_ends_it_at_once(client: LangGraphClient) -> None:
    tid, first = await _started(client)
    second = await client.runs.create(tid, "slow", input={"steps": 1})
    await client.runs.cancel(tid, second["run_id"])
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "interrupted"
    assert (await thread_dict(client, tid))["status"] == "busy"  # the first still runs
    await client.runs.cancel(tid, first)
    await wait_for_status(client, tid, first, "interrupted")


async def test_cancel_of_finished_run_is_404(client: LangGraphClient, server: str) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER)
    run = (await client.runs.list(tid))[0]
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel")
    assert response.status_code == 404
    assert "No matching runs to cancel" in response.json()["detail"]


async def test_bulk_cancel(client: LangGraphClient, server: str) -> None:
    tid, rid = await _started(client)
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post("/runs/cancel", json={"thread_id": tid, "run_ids": [rid]})
        assert response.status_code == 204
        mixed = await http.post("/runs/cancel", json={"run_ids": [rid], "status": "all"})
        assert mixed.status_code == 422
    await wait_for_status(client, tid, rid, "interrupted")


async def test_delete_run_removes_its_checkpoints(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER)
    rid = (await client.runs.list(tid))[0]["run_id"]
    assert await _checkpoints_of(engine, rid) > 0
    await client.runs.delete(tid, rid)
    assert await _checkpoints_of(engine, rid) == 0
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, rid)


async def test_delete_active_run_is_409(client: LangGraphClient) -> None:
    tid, rid = await _started(client)
    with pytest.raises(ConflictError):
        await client.runs.delete(tid, rid)
    await client.runs.cancel(tid, rid)


# -- multitask strategies ---------------------------------------------------------------


async def test_reject_is_409_and_inserts_nothing(client: LangGraphClient) -> None:
    tid, rid = await _started(client)
    with pytest.raises(ConflictError, match="already running a task"):
        await client.runs.create(tid, "slow", input={"steps": 1}, multitask_strategy="reject")
    assert [r["run_id"] for r in await client.runs.list(tid)] == [rid]
    await client.runs.cancel(tid, rid)


async def test_interrupt_strategy_stops_the_first_run(client: LangGraphClient) -> None:
    tid, first = await _started(client)
    second = await client.runs.create(
        tid, "slow", input={"steps": 1, "delay": 0}, multitask_strategy="interrupt"
    )
    await wait_for_status(client, tid, second["run_id"], "success")
    assert (await client.runs.get(tid, first))["status"] == "interrupted"
    assert (await thread_dict(client, tid))["status"] == "idle"


async def test_rollback_strategy_removes_the_first_run(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    tid, first = await _started(client)
    second = await client.runs.create(tid, "counter", input=COUNTER, multitask_strategy="rollback")
    await wait_for_status(client, tid, second["run_id"], "success")
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, first)
    assert await _checkpoints_of(engine, first) == 0
    assert [r["run_id"] for r in await client.runs.list(tid)] == [second["run_id"]]


async def test_enqueue_runs_start_in_creation_order(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    ids = [
        (await client.runs.create(tid, "slow", input={"steps": 1, "delay": 0.1}))["run_id"]
        for _ in range(4)
    ]
    await wait_for_status(client, tid, ids[-1], "success")
    finished = {r["run_id"]: r["updated_at"] for r in await client.runs.list(tid)}
    assert sorted(ids, key=lambda r: finished[r]) == ids
    assert (await state_dict(client, tid))["values"]["done"] == 4


async def test_on_disconnect_cancel(client: LangGraphClient, server: str) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    body = {"assistant_id": "slow", "input": LONG, "on_disconnect": "cancel"}
    async with (
        httpx.AsyncClient(base_url=server) as http,
        http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                rid = line.split('"run_id":"', 1)[1].split('"', 1)[0]
                break
    await wait_for_status(client, tid, rid, "interrupted")


async def test_cancelled_pending_stateless_run_leaves_nothing_behind(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    run = await client.runs.create(None, "counter", input=COUNTER, after_seconds=60)
    await client.runs.cancel(run["thread_id"], run["run_id"])
    async with engine.connect() as conn:
        left = await conn.execute(
            select(func.count())
            .select_from(threads)
            .where(threads.c.thread_id == uuid.UUID(run["thread_id"]))
        )
        assert left.scalar_one() == 0


async def test_deleting_a_thread_cancels_its_running_run(client: LangGraphClient) -> None:
    tid, rid = await _started(client, **LONG)
    queued = await client.runs.create(tid, "slow", input=LONG, multitask_strategy="enqueue")

    async def joined(run_id: str) -> list[Any]:
        return [p async for p in client.runs.join_stream(tid, run_id)]

    listeners = [asyncio.create_task(joined(r)) for r in (rid, queued["run_id"])]
    await asyncio.sleep(0.3)  # both listeners are subscribed
    await client.threads.delete(tid)
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*listeners), timeout=2.0)
    assert time.monotonic() - started < 2.0
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, rid)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
