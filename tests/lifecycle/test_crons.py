"""The cron scheduler in-process, on both backends: one firing per tick, one catch-up
firing after downtime, end_time, enabled, multitask strategies, and what deleting a
thread or an assistant does to crons."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, update

from broker.crons import FIRE_TIME_KEY, CronSpec
from broker.errors import Invalid, NotFound
from broker.ids import uuid7
from broker.models import Cron, RunRequest
from broker.runtime import Runtime
from broker.storage.assistants import AssistantSpec
from broker.storage.tables import crons, runs
from broker.users import User

COUNTER: dict[str, Any] = {"count": 0, "log": []}


def _last_hour() -> tuple[str, datetime]:
    """A schedule firing every minute of the past hour (UTC), and its tick ten minutes
    before that hour ended: no tick of it comes while a test runs (no flake at a minute's
    turn), and a cron whose stored tick is that one has missed ten ticks."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return f"* {hour.hour} * * *", hour + timedelta(minutes=50)


LAST_HOUR, MISSED_TEN = _last_hour()


def _spec(**fields: Any) -> CronSpec:
    payload = {"input": COUNTER, **fields.pop("payload", {})}
    metadata = fields.pop("metadata", {})
    return CronSpec(assistant_id="counter", payload=payload, metadata=metadata, **fields)


async def _overdue(runtime: Runtime, cron: Cron) -> None:
    """As if no scheduler had run for the last ten ticks of LAST_HOUR."""
    async with runtime.engine.begin() as conn:
        query = update(crons).where(crons.c.cron_id == cron.cron_id)
        await conn.execute(query.values(next_run_date=MISSED_TEN))


async def _runs_on(runtime: Runtime, thread_id: UUID) -> list[Any]:
    return await runtime.runs.list(thread_id, limit=100)


async def _thread(runtime: Runtime) -> UUID:
    return (await runtime.service.create_thread(uuid7(), {})).thread_id


async def test_after_downtime_a_cron_fires_once(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    cron = await runtime.crons.create(thread_id, _spec(schedule=LAST_HOUR), None)
    assert cron.next_run_date is not None and cron.next_run_date > datetime.now(UTC)
    assert await runtime.crons.fire_due() == 0  # not due yet
    await _overdue(runtime, cron)
    assert await runtime.crons.fire_due() == 1
    assert await runtime.crons.fire_due() == 0
    (run,) = await _runs_on(runtime, thread_id)
    assert run.metadata["cron_id"] == str(cron.cron_id)
    assert run.metadata[FIRE_TIME_KEY] == MISSED_TEN.isoformat()  # the first tick missed
    after = await runtime.crons.store.get(cron.cron_id)
    assert after.next_run_date is not None and after.next_run_date > datetime.now(UTC)


async def test_concurrent_schedulers_fire_a_tick_once(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    cron = await runtime.crons.create(thread_id, _spec(schedule=LAST_HOUR), None)
    await _overdue(runtime, cron)
    fired = await asyncio.gather(*(runtime.crons.fire_due() for _ in range(5)))
    assert sum(fired) == 1
    assert len(await _runs_on(runtime, thread_id)) == 1


async def test_a_stateless_cron_runs_on_a_new_thread_each_time(runtime: Runtime) -> None:
    cron = await runtime.crons.create(None, _spec(schedule=LAST_HOUR), None)
    for _ in range(2):
        await _overdue(runtime, cron)
        assert await runtime.crons.fire_due() == 1
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(runs.c.thread_id, runs.c.metadata))).all()
    fired = [r for r in rows if r.metadata.get("cron_id") == str(cron.cron_id)]
    assert len({r.thread_id for r in fired}) == 2


async def test_disabled_and_ended_crons_do_not_fire(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    off = await runtime.crons.create(thread_id, _spec(schedule=LAST_HOUR, enabled=False), None)
    await _overdue(runtime, off)
    assert await runtime.crons.fire_due() == 0
    soon = datetime.now(UTC) + timedelta(seconds=30)
    ending = await runtime.crons.create(thread_id, _spec(schedule="0 0 1 1 *", end_time=soon), None)
    assert ending.next_run_date is None  # its first tick lies past end_time
    await _overdue(runtime, ending)
    await runtime.crons.fire_due()
    assert (await runtime.crons.store.get(ending.cron_id)).next_run_date is None


async def test_reject_skips_a_tick_while_the_thread_is_busy(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    busy = RunRequest(assistant_id="counter", input=COUNTER)  # pending: the thread is busy
    await runtime.service.submit(thread_id, busy, subscribe=False)
    spec = _spec(schedule=LAST_HOUR, payload={"multitask_strategy": "reject"})
    cron = await runtime.crons.create(thread_id, spec, None)
    await _overdue(runtime, cron)
    assert await runtime.crons.fire_due() == 0
    assert len(await _runs_on(runtime, thread_id)) == 1
    advanced = await runtime.crons.store.get(cron.cron_id)
    assert advanced.next_run_date is not None and advanced.next_run_date > datetime.now(UTC)


async def test_bad_input_creates_nothing(runtime: Runtime) -> None:
    marked = {"case": str(uuid7())}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"schedule": "not a cron"}, "schedule"),
        ({"schedule": "0 0 30 2 *"}, "schedule"),  # February 30th: never
        ({"schedule": "* * * * * *"}, "schedule"),  # seconds are off
        ({"schedule": LAST_HOUR, "timezone": "Mars/Olympus"}, "timezone"),
        ({"schedule": LAST_HOUR, "end_time": datetime(2000, 1, 1, tzinfo=UTC)}, "end_time"),
    ]
    for fields, name in cases:
        with pytest.raises(Invalid, match=f"^{name}: "):
            await runtime.crons.create(None, _spec(**fields, metadata=marked), None)
    with pytest.raises(NotFound):
        await runtime.crons.create(uuid7(), _spec(schedule=LAST_HOUR, metadata=marked), None)
    assert await runtime.crons.store.count(metadata=marked) == 0


async def test_crons_go_with_their_thread_and_assistant(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    on_thread = await runtime.crons.create(thread_id, _spec(schedule=LAST_HOUR), None)
    await runtime.service.delete_thread(thread_id)
    with pytest.raises(NotFound):
        await runtime.crons.store.get(on_thread.cron_id)
    assistant = await runtime.service.create_assistant(
        None, AssistantSpec("counter", {}, {}, {}, "cron test", None)
    )
    spec = _spec(schedule=LAST_HOUR)
    mine = await runtime.crons.create(
        None, CronSpec(str(assistant.assistant_id), spec.schedule, spec.payload, {}), None
    )
    await runtime.service.delete_assistant(str(assistant.assistant_id))
    with pytest.raises(NotFound):
        await runtime.crons.store.get(mine.cron_id)


async def test_runs_carry_the_user_who_made_the_cron(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    alice = User({"identity": "alice", "permissions": ["read"]})
    cron = await runtime.crons.create(thread_id, _spec(schedule=LAST_HOUR), alice)
    assert cron.user_id == "alice"
    await _overdue(runtime, cron)
    assert await runtime.crons.fire_due() == 1
    (run,) = await _runs_on(runtime, thread_id)
    configurable = run.kwargs["config"]["configurable"]
    assert configurable["langgraph_auth_user_id"] == "alice"
    assert configurable["langgraph_auth_permissions"] == ["read"]
