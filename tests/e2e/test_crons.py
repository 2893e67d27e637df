"""Crons through the real SDK, on both topologies: each public method of `client.crons`
is called here (`test_every_sdk_method_is_exercised`), the scheduler of the server's
worker fires them, and bad input is refused naming the field, creating nothing.

The servers take 5-field schedules only; a test makes a cron due by moving its stored
tick into the past (as after downtime: LAST_HOUR, whose ticks never come during a
test), and the worker's scheduler (polling every second) fires it.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
import pytest
from langgraph_sdk._async.cron import CronClient
from langgraph_sdk.client import LangGraphClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import crons
from tests.e2e.helpers import SLOW_LIMIT

COUNTER: dict[str, Any] = {"count": 0, "log": []}


def _last_hour() -> tuple[str, datetime]:
    """A schedule firing every minute of the past hour (UTC), and its tick ten minutes
    before that hour ended: no tick of it comes while a test runs (no flake at a minute's
    turn), and a cron whose stored tick is that one has missed ten ticks."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return f"* {hour.hour} * * *", hour + timedelta(minutes=50)


LAST_HOUR, MISSED_TEN = _last_hour()


def test_every_sdk_method_is_exercised() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(CronClient, inspect.isfunction)
        if not name.startswith("_")
    }
    called = set(re.findall(r"\.crons\.(\w+)\(", Path(__file__).read_text()))
    assert public - called == set(), "SDK methods no test here calls"


def _marker() -> dict[str, str]:
    return {"test_marker": uuid.uuid4().hex}


async def _overdue(engine: AsyncEngine, cron_id: str) -> None:
    """As if the scheduler had been stopped for the last ten ticks of LAST_HOUR."""
    async with engine.begin() as conn:
        query = update(crons).where(crons.c.cron_id == uuid.UUID(cron_id))
        await conn.execute(query.values(next_run_date=MISSED_TEN))


async def _fired_runs(client: LangGraphClient, thread_id: str, count: int) -> list[Any]:
    for _ in range(int(SLOW_LIMIT / 0.1)):
        runs = await client.runs.list(thread_id)
        if len(runs) >= count:
            return list(runs)
        await asyncio.sleep(0.1)
    raise AssertionError(f"thread {thread_id}: the cron never fired {count} runs")


async def test_a_thread_cron_fires_joinable_runs(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    cron: Any = await client.crons.create_for_thread(
        tid,
        "counter",
        schedule=LAST_HOUR,
        input=COUNTER,
        metadata={"job": "digest"},
        stream_mode=["updates"],
        stream_resumable=True,
    )
    assert (cron["thread_id"], cron["schedule"], cron["enabled"]) == (tid, LAST_HOUR, True)
    next_run = datetime.fromisoformat(cron["next_run_date"])
    assert next_run == MISSED_TEN.replace(minute=0) + timedelta(days=1)  # its hour, tomorrow
    assert cron["payload"]["input"] == COUNTER and cron["metadata"] == {"job": "digest"}
    await _overdue(engine, cron["cron_id"])
    (run,) = await _fired_runs(client, tid, 1)
    assert run["metadata"]["cron_id"] == cron["cron_id"]
    assert run["metadata"]["job"] == "digest"
    assert datetime.fromisoformat(run["metadata"]["cron_fire_time"]) < datetime.now(UTC)
    output = await client.runs.join(tid, run["run_id"])
    assert output["count"] == 111
    # Its stream modes were kept: the resumable run's log replays its updates.
    replayed = client.runs.join_stream(tid, run["run_id"], last_event_id="-")
    events = [part.event async for part in replayed]
    assert events.count("updates") == 3, events
    # One catch-up firing for the missed ticks, not one per tick.
    await asyncio.sleep(1.5)
    assert len(await client.runs.list(tid)) == 1
    (after,) = await client.crons.search(thread_id=tid)
    assert datetime.fromisoformat(str(after["next_run_date"])) > datetime.now(UTC)


async def test_a_stateless_cron_keeps_each_runs_thread(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    marker = _marker()
    cron: Any = await client.crons.create(
        "counter",
        schedule=LAST_HOUR,
        input=COUNTER,
        metadata=marker,
        on_run_completed="keep",
        timezone="Europe/Paris",
    )
    assert (cron["thread_id"], cron["on_run_completed"]) == (None, "keep")
    assert cron["timezone"] == "Europe/Paris"
    await _overdue(engine, cron["cron_id"])
    for _ in range(int(SLOW_LIMIT / 0.1)):
        kept = await client.threads.search(metadata={"cron_id": cron["cron_id"]})
        if kept and kept[0]["status"] == "idle":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the stateless cron's run never finished on a kept thread")
    assert cast(Any, kept[0]["values"])["count"] == 111
    await client.crons.delete(cron["cron_id"])


async def test_search_count_update_delete(client: LangGraphClient) -> None:
    marker = _marker()
    thread = await client.threads.create()
    tid = thread["thread_id"]
    first: Any = await client.crons.create_for_thread(
        tid, "counter", schedule="0 9 * * *", metadata=marker
    )
    second: Any = await client.crons.create(
        "counter", schedule="30 8 * * 1", metadata=marker, enabled=False
    )
    found = await client.crons.search(metadata=marker, sort_by="created_at", sort_order="asc")
    assert [c["cron_id"] for c in found] == [first["cron_id"], second["cron_id"]]
    assert await client.crons.count(metadata=marker) == 2
    assert await client.crons.count(thread_id=tid) == 1
    assert await client.crons.count(assistant_id="counter", metadata=marker) == 2
    enabled = await client.crons.search(metadata=marker, enabled=True)
    assert [c["cron_id"] for c in enabled] == [first["cron_id"]]
    picked = await client.crons.search(thread_id=tid, select=["cron_id", "next_run_date"])
    assert set(picked[0]) == {"cron_id", "next_run_date"}

    end = datetime.now(UTC) + timedelta(days=30)
    updated: Any = await client.crons.update(
        first["cron_id"],
        schedule="15 10 * * *",
        timezone="America/New_York",
        end_time=end,
        metadata={"extra": 1},
        input={"count": 5, "log": []},
    )
    assert (updated["schedule"], updated["timezone"]) == ("15 10 * * *", "America/New_York")
    assert datetime.fromisoformat(updated["end_time"]) == end
    assert updated["metadata"] == {**marker, "extra": 1}
    assert updated["payload"]["input"] == {"count": 5, "log": []}
    tick = datetime.fromisoformat(updated["next_run_date"]).astimezone()
    assert (tick.astimezone(ZoneInfo("America/New_York")).hour, tick.minute) == (10, 15)
    cleared: Any = await client.crons.update(first["cron_id"], end_time=None, enabled=False)
    assert (cleared["end_time"], cleared["enabled"]) == (None, False)

    await client.crons.delete(first["cron_id"])
    await client.crons.delete(second["cron_id"])
    assert await client.crons.count(metadata=marker) == 0


async def test_get_and_missing(server: str, client: LangGraphClient) -> None:
    cron: Any = await client.crons.create("counter", schedule=LAST_HOUR, metadata=_marker())
    async with httpx.AsyncClient(base_url=server) as http:
        got = await http.get(f"/runs/crons/{cron['cron_id']}")
        assert got.status_code == 200 and got.json()["cron_id"] == cron["cron_id"]
        await client.crons.delete(cron["cron_id"])
        for method in ("GET", "DELETE", "PATCH"):
            body: dict[str, Any] | None = {} if method == "PATCH" else None
            missing = await http.request(method, f"/runs/crons/{cron['cron_id']}", json=body)
            assert missing.status_code == 404, method


@pytest.mark.parametrize(
    ("fields", "status", "named"),
    [
        ({"schedule": "every day"}, 422, "schedule"),
        ({"schedule": "* * * * * *"}, 422, "schedule"),  # seconds are off on these servers
        ({"schedule": "61 * * * *"}, 422, "schedule"),
        ({"timezone": "Mars/Olympus"}, 422, "timezone"),
        ({"end_time": "2001-01-01T00:00:00Z"}, 422, "end_time"),
        ({"assistant_id": str(uuid.uuid4())}, 404, "Assistant"),
        ({"webhook": "file:///etc/passwd"}, 422, "webhook"),
        ({"enabled": "yes"}, 422, "enabled"),
    ],
)
async def test_bad_input_creates_nothing(
    server: str, client: LangGraphClient, fields: dict[str, Any], status: int, named: str
) -> None:
    marker = _marker()
    body = {"assistant_id": "counter", "schedule": LAST_HOUR, "metadata": marker, **fields}
    async with httpx.AsyncClient(base_url=server) as http:
        refused = await http.post("/runs/crons", json=body)
        assert refused.status_code == status, refused.text
        assert named in refused.json()["detail"]
        on_thread = await http.post(f"/threads/{uuid.uuid4()}/runs/crons", json=body)
        assert on_thread.status_code in (status, 404), on_thread.text
    assert await client.crons.count(metadata=marker) == 0


async def test_unknown_thread_is_404(server: str) -> None:
    body = {"assistant_id": "counter", "schedule": LAST_HOUR}
    async with httpx.AsyncClient(base_url=server) as http:
        refused = await http.post(f"/threads/{uuid.uuid4()}/runs/crons", json=body)
    assert refused.status_code == 404
    assert "Thread" in refused.json()["detail"]


async def test_deleting_a_thread_deletes_its_crons(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.crons.create_for_thread(tid, "counter", schedule=LAST_HOUR)
    assert await client.crons.count(thread_id=tid) == 1
    await client.threads.delete(tid)
    assert await client.crons.count(thread_id=tid) == 0
