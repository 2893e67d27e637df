"""One /metrics scrape: this process's API metrics, every live worker's (from the board,
labelled `worker`), and what the stores say now. A store that does not answer is
reported (`broker_store_up 0`), never an error: an outage is when metrics matter most."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import metrics
from broker.board import WorkerBoard
from broker.errors import StoreUnavailable
from broker.storage import stats
from broker.storage.engine import store_of

T = TypeVar("T")
_CHECK_SECONDS = 2.0


async def families(engine: AsyncEngine, board: WorkerBoard) -> list[Metric]:
    collected: dict[str, Metric] = {m.name: m for m in metrics.API.collect()}
    database = store_of(engine.dialect)
    counts = await _answer(stats.run_counts(engine))
    outbox = await _answer(stats.outbox_counts(engine))
    workers = await _answer(board.read())
    for worker_id, text in (workers or {}).items():
        _merge(collected, text_string_to_metric_families(text.decode()), worker_id)
    gauges = [
        *_runs(counts),
        *_outbox(outbox),
        _workers(workers),
        _up(database, counts, workers),
        *_pool(engine),
    ]
    return [*collected.values(), *gauges]


def exposition(found: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(found))
    return metrics.render(registry)


def as_json(found: list[Metric]) -> dict[str, Any]:
    """The same figures as JSON: {name: {type, help, samples: [{name, labels, value}]}}."""
    return {
        m.name: {
            "type": m.type,
            "help": m.documentation,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in m.samples],
        }
        for m in found
    }


class _Fixed(Collector):
    def __init__(self, found: list[Metric]) -> None:
        self._found = found

    def collect(self) -> Iterable[Metric]:
        return self._found


async def _answer(check: Awaitable[T]) -> T | None:
    """The check's result, or None when its store is away (or does not answer in time)."""
    try:
        return await asyncio.wait_for(check, _CHECK_SECONDS)
    except (StoreUnavailable, TimeoutError):
        return None


def _merge(into: dict[str, Metric], found: Iterable[Metric], worker_id: str) -> None:
    for family in found:
        merged = into.setdefault(
            family.name, Metric(family.name, family.documentation, family.type, family.unit)
        )
        merged.samples += [
            s._replace(labels={**s.labels, "worker": worker_id}) for s in family.samples
        ]


def _runs(counts: stats.RunCounts | None) -> list[Metric]:
    if counts is None:
        return []
    by_status = GaugeMetricFamily(
        "broker_runs", "Runs pending or running now, by status", labels=["status"]
    )
    for status, n in counts.by_status.items():
        by_status.add_metric([status], n)
    depth = GaugeMetricFamily("broker_queue_depth", "Pending runs a worker could claim now")
    depth.add_metric([], counts.due)
    oldest = GaugeMetricFamily(
        "broker_queue_oldest_age_seconds", "How long the longest-waiting due run has waited"
    )
    oldest.add_metric([], counts.oldest_due_age)
    return [by_status, depth, oldest]


def _outbox(counts: stats.OutboxCounts | None) -> list[Metric]:
    if counts is None:
        return []
    pending = GaugeMetricFamily(
        "broker_webhook_pending", "Webhook deliveries in the outbox not yet delivered or given up"
    )
    pending.add_metric([], counts.pending)
    oldest = GaugeMetricFamily(
        "broker_webhook_oldest_pending_age_seconds",
        "How long ago the oldest pending webhook delivery was written",
    )
    oldest.add_metric([], counts.oldest_pending_age)
    return [pending, oldest]


def _workers(workers: dict[str, bytes] | None) -> Metric:
    alive = GaugeMetricFamily("broker_workers_alive", "Worker processes that published lately")
    alive.add_metric([], len(workers or {}))
    return alive


def _up(database: str, counts: object, workers: object) -> Metric:
    up = GaugeMetricFamily(
        "broker_store_up", "1 if the store answered this scrape, else 0", labels=["store"]
    )
    up.add_metric([database.lower()], 0 if counts is None else 1)
    if database == "Postgres":
        up.add_metric(["redis"], 0 if workers is None else 1)
    return up


def _pool(engine: AsyncEngine) -> list[Metric]:
    pool: Any = engine.pool
    if not hasattr(pool, "checkedout"):  # SQLite's pool keeps no count
        return []
    connections = GaugeMetricFamily(
        "broker_db_pool_connections", "This API process's database connections", labels=["state"]
    )
    connections.add_metric(["in_use"], pool.checkedout())
    connections.add_metric(["idle"], pool.checkedin())
    return [connections]
