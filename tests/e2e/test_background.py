"""Background runs joined later, from another API process; join forms; delayed runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.e2e.helpers import state_dict, thread_dict, wait_for_progress, wait_for_status

# Also behind PgBouncer, and on a Redis Cluster (tests/e2e/conftest.py).
pytestmark = [pytest.mark.pooled, pytest.mark.cluster]

SLOW: dict[str, Any] = {"steps": 8, "delay": 0.25}


async def test_join_stream_from_another_api_gets_only_later_events(
    production_client: LangGraphClient, second_server: str
) -> None:
    client = production_client
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input=SLOW, stream_mode=["values", "updates"])
    await wait_for_progress(client, tid, 2)
    other = get_client(url=second_server)
    parts = [p async for p in other.runs.join_stream(tid, run["run_id"])]
    await other.aclose()
    values = [p.data["done"] for p in parts if p.event == "values"]
    # nothing buffered: the first event is a later step, and every step after it arrives
    assert "metadata" not in [p.event for p in parts]
    assert values[0] >= 2
    assert values == list(range(values[0], SLOW["steps"] + 1))
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_join_returns_final_values_from_either_api(
    production_client: LangGraphClient, second_server: str
) -> None:
    client = production_client
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": 3, "delay": 0.1})
    other = get_client(url=second_server)
    joined: dict[str, Any] = dict(await other.runs.join(tid, run["run_id"]))
    await other.aclose()
    assert joined["done"] == 3
    again: dict[str, Any] = dict(await client.runs.join(tid, run["run_id"]))  # finished: at once
    assert again["done"] == 3


async def test_join_of_a_finished_run_answers_at_once(client: LangGraphClient, server: str) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "counter", input={"count": 0, "log": []})
    await wait_for_status(client, tid, run["run_id"], "success")
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.get(f"/threads/{tid}/runs/{run['run_id']}/join")
    # no keep-alive newline first: the answer did not wait for a heartbeat
    assert response.content.startswith(b"{"), response.content[:20]
    assert response.json()["count"] == 111


async def test_joining_a_finished_run_streams_nothing_and_closes(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "counter", input={"count": 0, "log": []})
    await wait_for_status(client, tid, run["run_id"], "success")
    started = time.monotonic()
    assert [p async for p in client.runs.join_stream(tid, run["run_id"])] == []
    assert time.monotonic() - started < 2.0


async def test_join_of_missing_run_is_404(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as missing:  # the SDK's join raises httpx's error
        await client.runs.join(thread["thread_id"], str(uuid.uuid4()))
    assert missing.value.response.status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "stream_mode=updates",
        'stream_mode=["updates"]',
        "stream_mode=updates&stream_mode=custom",
    ],
)
async def test_join_stream_mode_filter_forms(
    client: LangGraphClient, server: str, query: str
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "slow", input={"steps": 6, "delay": 0.2}, stream_mode=["values", "updates"]
    )
    await wait_for_progress(client, tid, 1)
    url = f"{server}/threads/{tid}/runs/{run['run_id']}/stream?{query}"
    async with httpx.AsyncClient() as http:
        body = (await http.get(url, timeout=30)).text
    events = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
    assert events and set(events) == {"updates"}


async def test_join_stream_without_filter_gets_every_mode(
    client: LangGraphClient, server: str
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "slow", input={"steps": 6, "delay": 0.2}, stream_mode=["values", "updates"]
    )
    await wait_for_progress(client, tid, 1)
    async with httpx.AsyncClient() as http:
        url = f"{server}/threads/{tid}/runs/{run['run_id']}/stream?stream_mode="
        body = (await http.get(url, timeout=30)).text
    events = {line[7:] for line in body.splitlines() if line.startswith("event: ")}
    assert events == {"values", "updates"}


async def test_stateless_background_run_deletes_its_thread(client: LangGraphClient) -> None:
    run = await client.runs.create(None, "counter", input={"count": 0, "log": []})
    tid = run["thread_id"]
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)  # temporary threads are not shown
    for _ in range(200):
        try:
            await client.runs.get(tid, run["run_id"])
        except NotFoundError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the temporary thread and its run were never deleted")


async def test_stateless_run_kept_becomes_a_thread(client: LangGraphClient) -> None:
    run = await client.runs.create(
        None, "counter", input={"count": 0, "log": []}, on_completion="keep"
    )
    await wait_for_status(client, run["thread_id"], run["run_id"], "success")
    thread = await thread_dict(client, run["thread_id"])
    assert thread["status"] == "idle"
    assert thread["values"]["count"] == 111


async def test_batch_creates_stateless_runs(client: LangGraphClient, server: str) -> None:
    body = [{"assistant_id": "counter", "input": {"count": i, "log": []}} for i in range(3)]
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post("/runs/batch", json=body)
    assert response.status_code == 200
    runs = response.json()
    assert [r["status"] for r in runs] == ["pending"] * 3
    assert len({r["thread_id"] for r in runs}) == 3


async def test_after_seconds_delays_the_start(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    created = time.monotonic()
    run = await client.runs.create(tid, "counter", input={"count": 0, "log": []}, after_seconds=1)
    await asyncio.sleep(0.5)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "pending"
    await wait_for_status(client, tid, run["run_id"], "success")
    assert time.monotonic() - created >= 1.0
    assert (await state_dict(client, tid))["values"]["count"] == 111
