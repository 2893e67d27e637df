"""GET /metrics: Prometheus text a scraper parses, with every worker's figures in it."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from langgraph_sdk.client import LangGraphClient
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server
from tests.receiver import receiving


async def _scrape(url: str) -> dict[str, Metric]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {m.name: m for m in text_string_to_metric_families(response.text)}


def _value(family: Metric, sample: str, **labels: str) -> float:
    return sum(
        s.value
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def _until_finished(url: str, at_least: float) -> dict[str, Metric]:
    """Workers publish every second: poll until their counters show the runs."""
    deadline = time.monotonic() + 15
    while True:
        found = await _scrape(url)
        finished = found.get("broker_runs_finished")
        if (
            finished
            and _value(finished, "broker_runs_finished_total", status="success") >= at_least
        ):
            return found
        assert time.monotonic() < deadline, sorted(found)
        await asyncio.sleep(0.2)


async def test_metrics_count_runs_queue_and_workers(
    client: LangGraphClient, server: str, backend: Server
) -> None:
    before = await _scrape(server)
    done_before = _value(
        before.get("broker_runs_finished", Metric("x", "", "counter")),
        "broker_runs_finished_total",
        status="success",
    )
    thread = await client.threads.create()
    for _ in range(2):
        await client.runs.wait(thread["thread_id"], "counter", input={"count": 0, "log": []})
    async for _part in client.runs.stream(None, "counter", input={"count": 0, "log": []}):
        pass
    later = await client.runs.create(
        thread["thread_id"], "counter", input={"count": 0, "log": []}, after_seconds=600
    )
    try:
        found = await _until_finished(server, done_before + 2)
        assert _value(found["broker_runs"], "broker_runs", status="pending") >= 1
        assert "broker_queue_depth" in found  # the delayed run is not due: not in the depth
        assert (
            _value(found["broker_queue_oldest_age_seconds"], "broker_queue_oldest_age_seconds") >= 0
        )
        assert _value(found["broker_workers_alive"], "broker_workers_alive") >= 1
        assert _value(found["broker_worker_slots"], "broker_worker_slots") == 4 * len(
            {s.labels["worker"] for s in found["broker_worker_slots"].samples}
        )
        wait = found["broker_run_queue_wait_seconds"]
        assert wait.type == "histogram"
        assert _value(wait, "broker_run_queue_wait_seconds_count") >= 2
        duration = found["broker_run_duration_seconds"]
        assert _value(duration, "broker_run_duration_seconds_count", status="success") >= 2
        assert _value(found["broker_events_published"], "broker_events_published_total") > 0
        relayed = found["broker_api_messages_relayed"]
        assert _value(relayed, "broker_api_messages_relayed_total") > 0
        assert _value(found["broker_api_streams_open"], "broker_api_streams_open") >= 0
        slow = found["broker_api_slow_readers"]
        assert {s.labels["outcome"] for s in slow.samples} == {"dropped", "caught_up"}
        database = "sqlite" if backend.backend == "dev" else "postgres"
        assert _value(found["broker_store_up"], "broker_store_up", store=database) == 1
        if backend.backend == "production":
            assert _value(found["broker_store_up"], "broker_store_up", store="redis") == 1
            assert "broker_db_pool_connections" in found
        assert all("worker" in s.labels for s in found["broker_runs_claimed"].samples)
    finally:
        await client.runs.cancel(thread["thread_id"], later["run_id"])


async def test_metrics_as_json(server: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server}/metrics", params={"format": "json"})
    assert response.status_code == 200
    body = response.json()
    assert body["broker_workers_alive"]["type"] == "gauge"
    assert body["broker_workers_alive"]["samples"][0]["value"] >= 1


def _outcomes(found: dict[str, Metric]) -> dict[str, float]:
    family = found.get("broker_webhook_deliveries", Metric("x", "", "counter"))
    return {
        o: _value(family, "broker_webhook_deliveries_total", outcome=o)
        for o in ("delivered", "retried", "failed")
    }


async def _until_outcomes(url: str, at_least: dict[str, float]) -> dict[str, Metric]:
    """Senders count a POST once its outcome is recorded; workers publish every second."""
    deadline = time.monotonic() + 15
    while True:
        found = await _scrape(url)
        counted = _outcomes(found)
        if all(counted[o] >= n for o, n in at_least.items()):
            return found
        assert time.monotonic() < deadline, counted
        await asyncio.sleep(0.2)


async def test_metrics_count_webhook_deliveries_and_retention(
    client: LangGraphClient, server: str
) -> None:
    before = _outcomes(await _scrape(server))
    key = uuid.uuid4().hex[:8]
    with receiving() as receiver:
        receiver.answer(f"{key}-refused", 400)  # a 4xx is final at once: failed
        receiver.answer(f"{key}-flaky", 503)  # a 5xx is retried (then accepted)
        thread = await client.threads.create()
        for hook in ("ok", "refused", "flaky"):
            await client.runs.wait(
                thread["thread_id"],
                "counter",
                input={"count": 0, "log": []},
                webhook=receiver.url(f"{key}-{hook}"),
            )
        found = await _until_outcomes(
            server, {o: before[o] + 1 for o in ("delivered", "retried", "failed")}
        )
    posts = found["broker_webhook_post_duration_seconds"]
    assert posts.type == "histogram"
    assert _value(posts, "broker_webhook_post_duration_seconds_count") >= 3
    assert _value(found["broker_webhook_pending"], "broker_webhook_pending") >= 0
    oldest = found["broker_webhook_oldest_pending_age_seconds"]
    assert _value(oldest, "broker_webhook_oldest_pending_age_seconds") >= 0
    # Retention's counters are there (at 0 until a sweep removes something), per worker.
    swept = found["broker_retention_threads_swept"]
    assert {s.labels["action"] for s in swept.samples} == {"deleted", "pruned"}
    assert all("worker" in s.labels for s in swept.samples)
    assert "broker_retention_webhook_deliveries_purged" in found
