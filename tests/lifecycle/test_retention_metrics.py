"""The retention sweep counts what it removed on the worker's metrics registry (published
to /metrics with the rest; tests/e2e/test_metrics.py scrapes them), once per thread
and delivery, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from broker import metrics
from broker.ids import uuid7
from broker.runtime import Runtime
from broker.storage.outbox import DELIVERED
from broker.storage.tables import webhook_outbox
from broker.storage.threads import TTLRequest
from broker.threads import NewThread


def _counted() -> tuple[float, float, float]:
    def sample(name: str, **labels: str) -> float:
        return metrics.WORKER.get_sample_value(name, labels) or 0.0

    return (
        sample("broker_retention_threads_swept_total", action="deleted"),
        sample("broker_retention_threads_swept_total", action="pruned"),
        sample("broker_retention_webhook_deliveries_purged_total"),
    )


async def _old_delivery(runtime: Runtime) -> None:
    """A delivery settled a month ago: past the 7 days deliveries are kept."""
    row = {
        "delivery_id": uuid7(),
        "run_id": uuid7(),
        "thread_id": uuid7(),
        "url": "http://127.0.0.1:9/hook",
        "payload": {},
        "status": DELIVERED,
        "created_at": datetime.now(UTC) - timedelta(days=30),
    }
    async with runtime.engine.begin() as conn:
        await conn.execute(webhook_outbox.insert().values(**row))


async def test_a_sweep_counts_threads_and_deliveries_once(runtime: Runtime) -> None:
    policy = runtime.service.thread_policy
    for strategy in ("delete", "delete", "keep_latest"):
        await policy.create(NewThread(uuid7(), ttl=TTLRequest(0.001, strategy)))
    await _old_delivery(runtime)
    before = _counted()
    await asyncio.sleep(0.07)  # the ttls are 0.001 min (60 ms)
    await runtime.lifecycle.sweep_threads()
    after = _counted()
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1]
    # Nothing left to delete or purge: nothing more counted. (The pruned thread's clock
    # restarted for another 60 ms, so a slow second sweep may rightly prune it again.)
    await runtime.lifecycle.sweep_threads()
    again = _counted()
    assert (again[0], again[2]) == (after[0], after[2])
