"""Chaos tests run real API and worker processes with short leases, each test its own set.

Tests marked `pooled` run twice: on Postgres directly, and behind a PgBouncer of their
own in transaction mode whose idle-in-transaction timeout is the lease (what the broker
sets on a direct connection). Tests marked `cluster` also run with REDIS_URI on the
session's 3-master Redis Cluster (tests/cluster_redis.py; each test its own prefix).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.cluster import Cluster
from tests.pooler import POOLED_ENV, pgbouncer

# Short leases and fast sweeps make a crash cost seconds, not the production 30 s.
CHAOS_SETTINGS = {
    "BROKER_LEASE_SECONDS": "2",
    "BROKER_HEARTBEAT_SECONDS": "0.5",
    "BROKER_SWEEP_SECONDS": "0.5",
    "BROKER_REQUEUE_SECONDS": "1",
    "BROKER_MAX_ATTEMPTS": "10",
    "BROKER_SHUTDOWN_GRACE": "1",
    "N_JOBS_PER_WORKER": "10",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "topology" in metafunc.fixturenames:
        extra = [m for m in ("pooled", "cluster") if metafunc.definition.get_closest_marker(m)]
        metafunc.parametrize("topology", ["direct", *extra])


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def chaos_env(
    broker_env: dict[str, str], topology: str, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    # A Redis database of its own, so FLUSHDB here touches nothing else.
    redis_uri = urlunparse(urlparse(broker_env["REDIS_URI"])._replace(path="/15"))
    prefix = f"broker-chaos-{uuid.uuid4().hex[:8]}"
    env = {**broker_env, **CHAOS_SETTINGS, "REDIS_URI": redis_uri, "BROKER_REDIS_PREFIX": prefix}
    if topology == "cluster":
        # Asked for here, not as an argument: only cluster-marked tests start the cluster.
        yield {**env, "REDIS_URI": request.getfixturevalue("redis_cluster_uri")}
        return
    if topology == "direct":
        yield env
        return
    lease = float(CHAOS_SETTINGS["BROKER_LEASE_SECONDS"])
    with pgbouncer(broker_env["DATABASE_URI"], idle_transaction_seconds=lease) as pooled:
        yield {**env, **POOLED_ENV, "DATABASE_URI": pooled.uri}


@pytest.fixture
def default_env(broker_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The production defaults for recovery (lease, heartbeat, liveness, sweep, requeue),
    a Redis database and prefix of the test's own; only the shutdown grace is short."""
    redis_uri = urlunparse(urlparse(broker_env["REDIS_URI"])._replace(path="/15"))
    prefix = f"broker-chaos-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in broker_env.items() if k not in CHAOS_SETTINGS}
    return {**env, "REDIS_URI": redis_uri, "BROKER_REDIS_PREFIX": prefix,
            "BROKER_SHUTDOWN_GRACE": "1"}  # fmt: skip


@pytest.fixture
def cluster(chaos_env: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(chaos_env, tmp_path) as running:
        yield running


@pytest.fixture
async def chaos_redis(chaos_env: dict[str, str]) -> AsyncIterator[Redis]:
    redis = Redis.from_url(chaos_env["REDIS_URI"])
    yield redis
    await redis.aclose()


@pytest.fixture
def db(engine: AsyncEngine) -> AsyncEngine:
    return engine
