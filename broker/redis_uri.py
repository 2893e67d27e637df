"""REDIS_URI to a client: one Redis (`redis://`, `rediss://`, `unix://`) or the master of a
Sentinel set (`redis+sentinel://`), followed through failovers.

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]

The sentinels are asked for the service's master on every new connection (redis-py's
`Sentinel.master_for`), and a connection still open to a master that was demoted raises
ConnectionError on its next command (redis-py turns the READONLY answer into one): to
the broker a failover is a short Redis outage, which every caller already survives.
The password, if any, is the master's; the sentinels are asked without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
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


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"REDIS_URI: sentinel {item!r} is not host:port")
    return host.strip("[]"), int(port)


def connect_redis(uri: str, **options: Any) -> Redis:
    """A client for REDIS_URI; connecting happens on first use, as with `from_url`."""
    options.setdefault("health_check_interval", HEALTH_CHECK_SECONDS)
    if urlsplit(uri).scheme != SENTINEL_SCHEME:
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
