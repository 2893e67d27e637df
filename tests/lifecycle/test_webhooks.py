"""Webhooks in-process on both backends: the delivery is written with the run's end and
sent at least once by the outbox's sender, to a real receiver on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, text, update

from broker.crons import CronSpec
from broker.errors import Invalid
from broker.ids import uuid7
from broker.models import (
    CancelAction,
    Claim,
    RunRequest,
    RunStatus,
    ThreadResult,
    ThreadStatus,
)
from broker.runtime import Runtime
from broker.settings import Settings
from broker.storage.ledger.outcomes import Finished
from broker.storage.outbox import OutboxStore
from broker.storage.tables import crons, webhook_outbox
from tests.lifecycle.conftest import drain
from tests.receiver import Receiver, receiving

COUNTER: dict[str, Any] = {"count": 0, "log": []}


@pytest.fixture
def fast_settings(fast_settings: Settings) -> Settings:
    fast = {
        "webhook_backoff_seconds": 0.01,
        "webhook_max_attempts": 3,
        "webhook_timeout_seconds": 2,
        "webhook_poll_seconds": 60.0,  # the tests send when they mean to
    }
    return fast_settings.model_copy(update=fast)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


def _key() -> str:
    return f"hook-{uuid.uuid4().hex[:12]}"


async def _run(
    runtime: Runtime, url: str, *, threaded: bool = True, graph: str = "counter", **options: Any
) -> UUID:
    thread_id = (await runtime.service.create_thread(uuid7(), {})).thread_id if threaded else None
    body = COUNTER if graph == "counter" else {"value": "x"}
    request = RunRequest(assistant_id=graph, input=body, webhook=url, **options)
    submission = await runtime.service.submit(thread_id, request, subscribe=False)
    return submission.run.run_id


async def _outbox(runtime: Runtime, run_id: UUID) -> list[Any]:
    query = select(webhook_outbox).where(webhook_outbox.c.run_id == run_id)
    async with runtime.engine.connect() as conn:
        return list((await conn.execute(query)).mappings().all())


async def _sessions(runtime: Runtime) -> list[Any]:
    """Who else is connected to this database (a sender we do not know of?)."""
    query = text(
        "SELECT pid, application_name, client_port, backend_start, state, query"
        " FROM pg_stat_activity WHERE datname = current_database()"
    )
    if runtime.engine.dialect.name != "postgresql":
        return []
    async with runtime.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]


async def _settled(runtime: Runtime, run_id: UUID, timeout: float = 10.0) -> Any:
    """Runs the sender until the run's delivery is delivered or given up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await runtime.lifecycle.deliver_webhooks()
        rows = await _outbox(runtime, run_id)
        if rows and rows[0]["status"] != "pending":
            return rows[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"the delivery of run {run_id} never settled: {rows}")


async def test_a_finished_run_posts_itself_once(runtime: Runtime, receiver: Receiver) -> None:
    key = _key()
    run_id = await _run(runtime, receiver.url(key))
    await drain(runtime)
    row = await _settled(runtime, run_id)
    for _ in range(3):  # delivered means done: later rounds send nothing
        await runtime.lifecycle.deliver_webhooks()
    (post,) = receiver.posts(key)
    run = await runtime.service.runs.get(run_id)
    assert post.body["run_id"] == str(run_id) and post.body["thread_id"] == str(run.thread_id)
    assert post.body["status"] == "success" and post.body["assistant_id"] == str(run.assistant_id)
    assert post.body["values"] == {"count": 111, "log": ["one", "two", "three"]}
    assert post.body["kwargs"]["webhook"] == receiver.url(key)
    assert post.body["multitask_strategy"] == "enqueue" and "error" not in post.body
    for stamp in ("created_at", "run_started_at", "run_ended_at", "webhook_sent_at"):
        assert post.body[stamp]
    assert post.headers["content-type"] == "application/json"
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 1, 200)
    assert row["delivered_at"] is not None and row["last_error"] is None


async def test_a_failed_run_posts_its_error(runtime: Runtime, receiver: Receiver) -> None:
    key = _key()
    run_id = await _run(runtime, receiver.url(key), graph="failing")
    await drain(runtime)
    await _settled(runtime, run_id)
    (post,) = receiver.posts(key)
    assert post.body["status"] == "error"
    assert "cannot handle 'x!'" in post.body["error"]


async def test_a_stateless_run_posts_after_its_thread_is_gone(
    runtime: Runtime, receiver: Receiver
) -> None:
    key = _key()
    run_id = await _run(runtime, receiver.url(key), threaded=False)
    await drain(runtime)
    await _settled(runtime, run_id)
    (post,) = receiver.posts(key)
    assert post.body["status"] == "success" and post.body["kwargs"]["temporary"] is True
    assert post.body["values"]["count"] == 111


async def test_a_receiver_failing_twice_gets_three_posts(
    runtime: Runtime, receiver: Receiver
) -> None:
    key = _key()
    receiver.answer(key, 500, 503)
    run_id = await _run(runtime, receiver.url(key))
    await drain(runtime)
    row = await _settled(runtime, run_id)
    posts = receiver.posts(key)
    assert len(posts) == 3 and len({p.body["run_id"] for p in posts}) == 1
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 3, 200)


async def test_a_4xx_is_final(runtime: Runtime, receiver: Receiver) -> None:
    key = _key()
    receiver.answer(key, 404)
    run_id = await _run(runtime, receiver.url(key))
    await drain(runtime)
    row = await _settled(runtime, run_id)
    assert len(receiver.posts(key)) == 1
    assert (row["status"], row["attempts"], row["last_status"]) == ("failed", 1, 404)


async def test_the_sender_gives_up_after_its_attempts(
    runtime: Runtime, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "broker.webhooks")  # each claim, should it fail
    key = _key()
    receiver.answer(key, 500, 500, 500, 500)
    run_id = await _run(runtime, receiver.url(key))
    await drain(runtime)
    row = await _settled(runtime, run_id)
    sent = [p.body["webhook_sent_at"] for p in receiver.posts(key)]
    seen = f"{sent}\n{dict(row)}\n{await _sessions(runtime)}\n{caplog.text}"
    assert len(sent) == 3, seen  # BROKER_WEBHOOK_MAX_ATTEMPTS
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 3, "HTTP 500")


async def test_an_unreachable_receiver_is_retried(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "broker")
    with receiving() as gone:
        url = gone.url("nobody")
    run_id = await _run(runtime, url)  # the port is closed now: connection refused
    await drain(runtime)
    row = await _settled(runtime, run_id)
    assert (row["status"], row["attempts"], row["last_status"]) == ("failed", 3, None), caplog.text
    assert "ConnectError" in row["last_error"]


async def test_a_cancelled_pending_run_posts_interrupted(
    runtime: Runtime, receiver: Receiver
) -> None:
    key = _key()
    run_id = await _run(runtime, receiver.url(key), after_seconds=3600)
    await runtime.service.cancel([run_id], CancelAction.INTERRUPT)
    await _settled(runtime, run_id)
    (post,) = receiver.posts(key)
    assert post.body["status"] == "interrupted" and post.body["run_started_at"] is None


async def test_a_run_given_up_by_the_sweeper_posts_its_error(
    runtime: Runtime, receiver: Receiver
) -> None:
    key = _key()
    run_id = await _run(runtime, receiver.url(key))
    for _ in range(runtime.settings.max_attempts):  # each claim's worker dies at once
        assert await runtime.lifecycle.claim(run_id, "dead", timedelta(seconds=-1))
        await runtime.lifecycle.sweep(requeue_after=60)
    await _settled(runtime, run_id)
    (post,) = receiver.posts(key)
    assert post.body["status"] == "error" and "lost its worker" in post.body["error"]


async def _succeed(runtime: Runtime, claim: Claim) -> Finished:
    """Ends a claimed run in success by hand, writing its delivery (no worker, no sender)."""
    delivery = runtime.lifecycle.webhooks.delivery(claim.run, RunStatus.SUCCESS)
    return await runtime.lifecycle.ledger.finish(
        claim.run.run_id,
        claim.attempt,
        RunStatus.SUCCESS,
        ThreadResult(ThreadStatus.IDLE),
        drop_thread=False,
        delivery=delivery,
    )


async def test_a_stale_attempt_writes_no_delivery(runtime: Runtime, receiver: Receiver) -> None:
    run_id = await _run(runtime, receiver.url(_key()))
    claim = await runtime.lifecycle.claim(run_id, "dead", timedelta(seconds=-1))
    assert claim is not None
    await runtime.lifecycle.sweep(requeue_after=60)  # back to pending: attempt 1 is fenced
    finished = await _succeed(runtime, claim)
    assert not finished.owned and await _outbox(runtime, run_id) == []


async def test_a_delivery_whose_sender_died_is_sent_by_another(
    runtime: Runtime, receiver: Receiver
) -> None:
    key = _key()
    run_id = await _run(runtime, receiver.url(key))
    # Ended by hand, not by a burst worker: its own sender could post before `dead` claims.
    claim = await runtime.lifecycle.claim(run_id, "w", timedelta(seconds=60))
    assert claim is not None
    finished = await _succeed(runtime, claim)
    assert finished.owned
    dead = OutboxStore(runtime.engine)  # a sender that claims, then dies before posting
    claimed = await dead.claim(100, timedelta(seconds=1))
    assert run_id in {c.run_id for c in claimed}
    assert await runtime.lifecycle.deliver_webhooks() == 0  # held while its lease lasts
    await asyncio.sleep(1.05)
    row = await _settled(runtime, run_id)
    assert len(receiver.posts(key)) == 1 and row["attempts"] == 2


async def test_settled_deliveries_are_kept_a_week(runtime: Runtime, receiver: Receiver) -> None:
    """The retention sweep deletes settled deliveries past BROKER_WEBHOOK_RETENTION_DAYS;
    a pending one stays, however old."""
    sent = await _run(runtime, receiver.url(_key()))
    await drain(runtime)
    await _settled(runtime, sent)
    waiting = await _run(runtime, receiver.url(_key()), after_seconds=3600)
    await runtime.service.cancel([waiting], CancelAction.INTERRUPT)  # its delivery: pending
    old = datetime.now(UTC) - timedelta(days=8)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(webhook_outbox)
            .values(created_at=old)
            .where(webhook_outbox.c.run_id.in_([sent, waiting]))
        )
    report = await runtime.lifecycle.sweep_threads()
    assert "1 old webhook deliveries deleted" in report
    assert await _outbox(runtime, sent) == [] and len(await _outbox(runtime, waiting)) == 1


async def test_a_cron_run_posts_and_a_bad_cron_webhook_is_refused(
    runtime: Runtime, receiver: Receiver
) -> None:
    key = _key()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    payload = {"input": COUNTER, "webhook": receiver.url(key)}
    spec = CronSpec(
        assistant_id="counter", schedule=f"* {hour.hour} * * *", payload=payload, metadata={}
    )
    with pytest.raises(Invalid, match=r"^webhook: "):
        await runtime.crons.create(None, replace(spec, payload={"webhook": "file:///x"}), None)
    cron = await runtime.crons.create(None, spec, None)
    async with runtime.engine.begin() as conn:  # due now: as if its tick had come
        await conn.execute(
            update(crons).where(crons.c.cron_id == cron.cron_id).values(next_run_date=hour)
        )
    assert await runtime.crons.fire_due() == 1
    await drain(runtime)
    (post,) = await _sent(runtime, receiver, key)
    assert post.body["status"] == "success" and post.body["metadata"]["cron_id"] == str(
        cron.cron_id
    )


async def _sent(runtime: Runtime, receiver: Receiver, key: str) -> list[Any]:
    """Runs the sender until `key` has had a post."""
    for _ in range(250):
        await runtime.lifecycle.deliver_webhooks()
        if posts := receiver.posts(key):
            return posts
        await asyncio.sleep(0.02)
    raise AssertionError(f"nothing was posted to {key}")
