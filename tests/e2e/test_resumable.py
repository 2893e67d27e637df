"""Resumable streams: ids, Last-Event-ID replay then live, retention, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from redis.asyncio import Redis

from broker.keys import Keys
from broker.settings import Settings
from tests.e2e.helpers import wait_for_status

RUN = {"steps": 12, "delay": 0.15}


async def test_reconnect_with_last_event_id_loses_nothing(
    production_client: LangGraphClient, second_server: str
) -> None:
    await _reconnect_loses_nothing(production_client, second_server)


async def test_reconnect_with_last_event_id_on_a_redis_cluster(cluster_server: str) -> None:
    """The same on the 3-master cluster: the log is a STREAM on its run's slot, the live
    part comes through sharded pub/sub (SSUBSCRIBE on that slot's master)."""
    client = get_client(url=cluster_server)
    await _reconnect_loses_nothing(client, cluster_server)
    await client.aclose()


async def _reconnect_loses_nothing(client: LangGraphClient, rejoin_url: str) -> None:
    """Cut a resumable stream at a random event, rejoin from its id through `rejoin_url`:
    what was received then is the whole log replayed, none lost, none twice."""
    thread = await client.threads.create()
    tid = thread["thread_id"]
    cut = random.randint(2, 8)
    first: list[Any] = []
    async for part in client.runs.stream(
        tid, "slow", input=RUN, stream_mode=["values", "updates"], stream_resumable=True
    ):
        first.append(part)
        if len(first) == cut:
            break  # the connection drops here
    rid = first[0].data["run_id"]
    await asyncio.sleep(random.uniform(1.0, 2.0))
    other = get_client(url=rejoin_url)
    rest = [p async for p in other.runs.join_stream(tid, rid, last_event_id=first[-1].id)]
    everything = [p async for p in other.runs.join_stream(tid, rid, last_event_id="-1")]
    await other.aclose()
    received = [(p.id, p.event) for p in first + rest]
    assert received == [(p.id, p.event) for p in everything]  # none lost, none twice
    assert len({p.id for p in everything}) == len(everything)
    assert [p.data.get("done") for p in everything if p.event == "values"][-1] == RUN["steps"]
    assert (await client.runs.get(tid, rid))["status"] == "success"


async def test_resumable_events_carry_ids_and_are_kept_for_a_grace_period(
    production_client: LangGraphClient, production_server: str, settings: Settings
) -> None:
    client, server = production_client, production_server
    thread = await client.threads.create()
    tid = thread["thread_id"]
    body = {"assistant_id": "counter", "input": {"count": 0, "log": []}, "stream_resumable": True}
    async with httpx.AsyncClient(base_url=server) as http:
        raw = (await http.post(f"/threads/{tid}/runs/stream", json=body)).text
    ids = [line[4:] for line in raw.splitlines() if line.startswith("id: ")]
    assert len(ids) == raw.count("event: ") and len(set(ids)) == len(ids)
    rid = raw.split('"run_id":"', 1)[1].split('"', 1)[0]
    redis = Redis.from_url(settings.redis_uri)
    ttl = await redis.ttl(Keys(settings.redis_prefix).run_log(rid))
    await redis.aclose()
    assert 0 < ttl <= settings.resumable_grace_seconds


async def test_non_resumable_runs_store_nothing(
    production_client: LangGraphClient, production_server: str, settings: Settings
) -> None:
    client, server = production_client, production_server
    thread = await client.threads.create()
    tid = thread["thread_id"]
    body = {"assistant_id": "counter", "input": {"count": 0, "log": []}}
    async with httpx.AsyncClient(base_url=server) as http:
        raw = (await http.post(f"/threads/{tid}/runs/stream", json=body)).text
    assert "\nid: " not in raw
    rid = raw.split('"run_id":"', 1)[1].split('"', 1)[0]
    redis = Redis.from_url(settings.redis_uri)
    assert await redis.exists(Keys(settings.redis_prefix).run_log(rid)) == 0
    await redis.aclose()


@pytest.mark.cluster  # also on the Redis Cluster (tests/e2e/conftest.py)
async def test_rejoining_a_finished_resumable_run_replays_and_closes(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(
        tid, "counter", input={"count": 0, "log": []}, stream_mode="updates", stream_resumable=True
    )
    await wait_for_status(client, tid, run["run_id"], "success")
    replayed = [p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id="-1")]
    assert [p.event for p in replayed] == ["metadata", "updates", "updates", "updates"]
    filtered = [
        p
        async for p in client.runs.join_stream(
            tid, run["run_id"], last_event_id="-1", stream_mode="updates"
        )
    ]
    assert [p.event for p in filtered] == ["updates"] * 3
