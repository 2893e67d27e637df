"""What every chaos test checks in Postgres once the dust settles."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from langgraph_sdk.client import LangGraphClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CHECKPOINTS = text(
    """
    SELECT thread_id, step, metadata->>'source' AS source,
           (metadata->>'run_attempt')::int AS attempt, created_at
    FROM checkpoints
    WHERE thread_id = ANY(:threads) AND checkpoint_ns = ''
    ORDER BY thread_id, checkpoint_id
    """
)


async def checkpoint_rows(engine: AsyncEngine, thread_ids: list[str]) -> dict[str, list[Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(CHECKPOINTS, {"threads": thread_ids})).all()
    by_thread: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_thread[row.thread_id].append(row)
    return by_thread


def assert_history_is_clean(by_thread: dict[str, list[Any]]) -> None:
    """Steps only grow, each run started once, and no older attempt wrote after a newer one."""
    for thread_id, rows in by_thread.items():
        steps = [r.step for r in rows]
        assert steps == sorted(set(steps)), f"{thread_id}: steps {steps}"
        inputs = [r for r in rows if r.source == "input"]
        assert len(inputs) == 1, f"{thread_id}: restarted from the start {len(inputs)} times"
        attempts = [r.attempt for r in rows]
        assert attempts == sorted(attempts), f"{thread_id}: attempts interleaved {attempts}"


def resumed_at(
    by_thread: dict[str, list[Any]], thread_id: str, after_attempt: int
) -> datetime | None:
    """When a later attempt first wrote a checkpoint on the thread."""
    later = [r.created_at for r in by_thread[thread_id] if r.attempt > after_attempt]
    return min(later) if later else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def assert_log_has_every_step(
    client: LangGraphClient, thread_id: str, run_id: str, steps: int, logs: str = ""
) -> None:
    """A resumable `slow` run's log, replayed from its start, holds the `values` event of
    each of its `steps` (after a failover: on the promoted replica or new master)."""
    parts = [part async for part in client.runs.join_stream(thread_id, run_id, last_event_id="-1")]
    done = {p.data.get("done", 0) for p in parts if p.event == "values"}
    missing = set(range(1, steps + 1)) - done
    assert not missing, f"values of steps {sorted(missing)} are not in the log\n{logs}"
