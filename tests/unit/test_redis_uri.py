"""REDIS_URI's sentinel and cluster forms are read exactly; a malformed one fails naming REDIS_URI."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from broker.redis_uri import (
    ClusterTarget,
    SentinelTarget,
    connect_redis,
    parse_cluster_uri,
    parse_sentinel_uri,
)


def test_sentinels_service_and_db() -> None:
    uri = "redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/mymaster/3"
    assert parse_sentinel_uri(uri) == SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("::1", 26380)),
        service_name="mymaster",
        db=3,
        username=None,
        password="s@cret",
    )


def test_db_defaults_to_0() -> None:
    target = parse_sentinel_uri("redis+sentinel://host:26379/svc")
    assert (target.sentinels, target.service_name, target.db) == ((("host", 26379),), "svc", 0)


@pytest.mark.parametrize(
    "uri",
    [
        "redis+sentinel://host:26379",
        "redis+sentinel:///svc",
        "redis+sentinel://host/svc",
        "redis+sentinel://host:26379/svc/zero",
        "redis+sentinel://host:26379/svc/0/extra",
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URI"):
        parse_sentinel_uri(uri)


async def test_clients_for_each_form() -> None:
    plain = connect_redis("redis://127.0.0.1:6379/2")
    sentinel = connect_redis("redis+sentinel://127.0.0.1:26379/svc/1")
    assert isinstance(plain, Redis) and isinstance(sentinel, Redis)
    pool = sentinel.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "svc"
    assert pool.connection_kwargs["db"] == 1
    await plain.aclose()
    await sentinel.aclose()


def test_cluster_nodes_and_credentials() -> None:
    uri = "redis-cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001"
    assert parse_cluster_uri(uri) == ClusterTarget(
        nodes=(("10.0.0.1", 7000), ("::1", 7001)), username="app", password="s@cret"
    )


@pytest.mark.parametrize(
    "uri", ["redis-cluster://", "redis-cluster://host", "redis-cluster://host:7000/0"]
)
def test_malformed_cluster_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URI"):
        parse_cluster_uri(uri)


async def test_cluster_client() -> None:
    client = connect_redis("redis-cluster://127.0.0.1:7000,127.0.0.1:7001")
    assert isinstance(client, RedisCluster)
    await client.aclose()
