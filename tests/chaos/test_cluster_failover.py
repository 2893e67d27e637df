"""A master of a Redis Cluster killed mid-batch: its replica takes over, no run is lost.

A real cluster (3 masters, a replica each, `cluster-node-timeout` 1 s: tests/cluster_redis.py)
on loopback; `kill -9` goes to the master holding the broker-wide keys (the queue, the
cancel channel), then, if another master holds it, to the one holding the resumable
run's event log, each time once the previous replica has taken over. Every run accepted
before or after must succeed (the Postgres ledger and the sweeper's requeue), and the
resumable run's log must hold every step's `values` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from langgraph_sdk import get_client
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import StoreUnavailable
from broker.events import redis_event_bus
from broker.keys import Keys
from broker.redis_uri import connect_redis
from tests.chaos.checks import (
    assert_history_is_clean,
    assert_log_has_every_step,
    checkpoint_rows,
)
from tests.chaos.cluster import Cluster
from tests.chaos.conftest import CHAOS_SETTINGS
from tests.chaos.test_crashes import _create_runs, _until_done
from tests.chaos.test_outages import _until_running
from tests.cluster_redis import RedisCluster

STEPS = 12


async def test_master_killed_mid_batch_loses_no_run_and_no_logged_event(
    broker_env: dict[str, str], db: AsyncEngine, tmp_path: Path
) -> None:
    (tmp_path / "redis").mkdir()
    prefix = f"broker-cluster-{uuid.uuid4().hex[:8]}"
    with RedisCluster(tmp_path / "redis", replicas=1) as redis_cluster:
        env = {
            **broker_env,
            **CHAOS_SETTINGS,
            "REDIS_URI": redis_cluster.uri,
            "BROKER_REDIS_PREFIX": prefix,
        }
        with Cluster(env, tmp_path).start(apis=1, workers=2) as cluster:
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

                keys = Keys(prefix)
                victims = {
                    redis_cluster.master_of(k): k
                    for k in (keys.queue, keys.run_log(resumable["run_id"]))
                }
                for key in victims.values():
                    await asyncio.to_thread(redis_cluster.kill_master_of, key)
                after = await _create_runs(cluster.urls, 10, {"steps": 2, "delay": 0.1})

                created = [*before, *after, (thread["thread_id"], resumable["run_id"])]
                statuses = await _until_done(db, [r for _, r in created], cluster)
                assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
                assert_history_is_clean(await checkpoint_rows(db, [t for t, _ in created]))

                await assert_log_has_every_step(
                    client, thread["thread_id"], resumable["run_id"], STEPS, cluster.logs()
                )


async def test_a_subscription_made_before_a_failover_follows_its_channel(tmp_path: Path) -> None:
    """The bus' SSUBSCRIBE connection to the killed master moves to the promoted replica
    (its own connection would retry the dead node forever)."""
    channel = Keys(f"broker-cluster-{uuid.uuid4().hex[:8]}").run_channel(uuid.uuid4())
    with RedisCluster(tmp_path, replicas=1) as redis_cluster:
        redis = connect_redis(redis_cluster.uri)
        bus = redis_event_bus(redis)
        subscription = await bus.subscribe(channel)
        await bus.publish(channel, b"before")
        assert await subscription.get(5.0) == b"before"
        await asyncio.to_thread(redis_cluster.kill_master_of, channel)
        # Frames published before the bus has moved are lost (pub/sub keeps nothing):
        # publish until one is heard, within the bound of a chaos test.
        heard = None
        for _ in range(60):
            with contextlib.suppress(StoreUnavailable):
                await bus.publish(channel, b"after")
            heard = await subscription.get(0.5)
            if heard is not None:
                break
        assert heard == b"after"
        await subscription.close()
        await bus.close()
        await redis.aclose()
