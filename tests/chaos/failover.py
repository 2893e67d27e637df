"""One chaos scenario for every kind of Redis failover (Sentinel, Cluster): a resumable
run and a batch execute on 1 API + 2 workers, Redis fails over mid-batch, more runs are
accepted right after. Every run must succeed with a clean history (the Postgres ledger
and the sweeper's requeue), and the resumable run's log, replayed from its start, must
hold every step's `values` event."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from langgraph_sdk import get_client
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.checks import (
    assert_history_is_clean,
    assert_log_has_every_step,
    checkpoint_rows,
)
from tests.chaos.cluster import Cluster
from tests.chaos.conftest import CHAOS_SETTINGS
from tests.chaos.test_crashes import _create_runs, _until_done
from tests.chaos.test_outages import _until_running

STEPS = 12


async def fail_over_mid_batch(
    env: dict[str, str],
    db: AsyncEngine,
    tmp_path: Path,
    fail_over: Callable[[str], Awaitable[None]],
) -> None:
    """Runs the scenario; `fail_over(resumable_run_id)` makes Redis fail over."""
    with Cluster({**env, **CHAOS_SETTINGS}, tmp_path).start(apis=1, workers=2) as cluster:
        cluster.wait_for_workers()
        # Closed even when an assertion fails: its socket would fail the next test.
        async with contextlib.aclosing(get_client(url=cluster.urls[0])) as client:
            thread = await client.threads.create()
            resumable = await client.runs.create(
                thread["thread_id"],
                "slow",
                input={"steps": STEPS, "delay": 0.25},
                stream_mode=["values"],
                stream_resumable=True,
            )
            before = await _create_runs(cluster.urls, 20, {"steps": 6, "delay": 0.2})
            await _until_running(db, [r for _, r in before])
            await fail_over(resumable["run_id"])
            after = await _create_runs(cluster.urls, 10, {"steps": 2, "delay": 0.1})

            created = [*before, *after, (thread["thread_id"], resumable["run_id"])]
            statuses = await _until_done(db, [r for _, r in created], cluster)
            assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
            assert_history_is_clean(await checkpoint_rows(db, [t for t, _ in created]))
            await assert_log_has_every_step(
                client, thread["thread_id"], resumable["run_id"], STEPS, cluster.logs()
            )
