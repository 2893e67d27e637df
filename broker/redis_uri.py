"""REDIS_URI to a client: one Redis (`redis://`, `rediss://`, `unix://`), the master of a
Sentinel set (`redis+sentinel://`), followed through failovers, or a Redis Cluster
(`redis-cluster://`).

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]

The sentinels are asked for the service's master on every new connection (redis-py's
`Sentinel.master_for`), and a connection still open to a master that was demoted raises
ConnectionError on its next command (redis-py turns the READONLY answer into one): to
the broker a failover is a short Redis outage, which every caller already survives.
The password, if any, is the master's; the sentinels are asked without one.

    redis-cluster://[[user]:password@]host:port[,host:port...]

The nodes listed are where the cluster's slot map is first read (any one answering is
enough); redis-py follows MOVED/ASK redirections and refreshes the map from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.sentinel import Sentinel

# What the broker's Redis adapters are given: every command they send works on both.
RedisClient = Redis | RedisCluster

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis-cluster"
HEALTH_CHECK_SECONDS = 30
# A sentinel that does not answer within this is skipped for the next one.
SENTINEL_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int
    username: str | None
    password: str | None


def parse_sentinel_uri(uri: str) -> SentinelTarget:
    """The parts of a `redis+sentinel://` URI; ValueError naming what is wrong."""
    parts = urlsplit(uri)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"REDIS_URI: not a {SENTINEL_SCHEME}:// URI")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item)
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not 1 <= len(path) <= 2:
        raise ValueError(
            f"REDIS_URI: expected {SENTINEL_SCHEME}://host:port[,host:port]/service_name[/db]"
        )
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"REDIS_URI: the database must be a number, not {path[1]!r}")
    return SentinelTarget(
        sentinels=sentinels,
        service_name=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


@dataclass(frozen=True)
class ClusterTarget:
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None


def parse_cluster_uri(uri: str) -> ClusterTarget:
    """The parts of a `redis-cluster://` URI; ValueError naming what is wrong."""
    parts = urlsplit(uri)
    if parts.scheme != CLUSTER_SCHEME:
        raise ValueError(f"REDIS_URI: not a {CLUSTER_SCHEME}:// URI")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = tuple(_host_port(item, "cluster node") for item in hosts.split(",") if item)
    if not nodes or parts.path.strip("/"):
        # A cluster has only database 0: a path would be a database it cannot select.
        raise ValueError(f"REDIS_URI: expected {CLUSTER_SCHEME}://host:port[,host:port]")
    return ClusterTarget(nodes, unquote(username) or None, unquote(password) or None)


def _host_port(item: str, what: str = "sentinel") -> tuple[str, int]:
    host, _, port = item.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"REDIS_URI: {what} {item!r} is not host:port")
    return host.strip("[]"), int(port)


def connect_redis(uri: str, **options: Any) -> RedisClient:
    """A client for REDIS_URI; connecting happens on first use, as with `from_url`."""
    options.setdefault("health_check_interval", HEALTH_CHECK_SECONDS)
    scheme = urlsplit(uri).scheme
    if scheme == CLUSTER_SCHEME:
        return _connect_cluster(parse_cluster_uri(uri), **options)
    if scheme != SENTINEL_SCHEME:
        return Redis.from_url(uri, **options)
    target = parse_sentinel_uri(uri)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_SECONDS},
    )
    master: Redis = sentinel.master_for(
        target.service_name,
        redis_class=Redis,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )
    return master


def _connect_cluster(target: ClusterTarget, **options: Any) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        **options,
    )
