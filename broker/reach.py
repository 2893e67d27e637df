"""Is Postgres or Redis usable at a URI? One probe and one message naming the fix.

Every `broker` command checks its stores with these before it starts (so a wrong
DATABASE_URI is one line, not a traceback), and the test fixtures (tests/services.py)
say the same thing in the same words.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlparse

import asyncpg

from broker.redis_uri import connect_redis

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Service:
    name: str
    env: str
    probe: Callable[[str], None]  # raises if the service does not answer at the URI


class Unreachable(Exception):
    """A store a command needs does not answer; the message names the variable and the fix."""


def libpq(uri: str) -> str:
    """asyncpg speaks libpq URIs, not SQLAlchemy's `postgresql+asyncpg://`."""
    return uri.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _select_one(uri: str) -> None:
    # No named prepared statement: the probe must pass a transaction-pooling PgBouncer too.
    connection = await asyncpg.connect(
        libpq(uri), timeout=PROBE_TIMEOUT_SECONDS, statement_cache_size=0
    )
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()


def _probe_postgres(uri: str) -> None:
    # In a thread, so that it works whether or not an event loop is running here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _select_one(uri)).result()


async def _ping(uri: str) -> None:
    # The broker's own client, so every REDIS_URI scheme it takes (Sentinel, Cluster) probes.
    timeout = PROBE_TIMEOUT_SECONDS
    client = connect_redis(uri, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _probe_redis(uri: str) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _ping(uri)).result()


POSTGRES = Service("Postgres", "DATABASE_URI", _probe_postgres)
REDIS = Service("Redis", "REDIS_URI", _probe_redis)


def problem(service: Service, uri: str) -> str | None:
    """Why `service` is not usable at `uri` (the driver's error in one line), or None."""
    try:
        service.probe(uri)
    except Exception as error:
        return f"{type(error).__name__}: {error}".strip().rstrip(":")
    return None


def address(uri: str) -> str:
    parsed = urlparse(uri)
    return f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)


def redacted(uri: str) -> str:
    """The URI with its password replaced by ***."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@")).geturl()


def unusable(service: Service, uri: str, error: str, *, configured: bool = True) -> str:
    """`<VAR> is set to <uri>, but <service> is not usable there (<error>); fix it`."""
    if configured:
        where = f"{service.env} is set to {redacted(uri)}"
    else:
        where = f"{service.env} is not set, so the default {redacted(uri)} is used"
    return f"{where}, but {service.name} is not usable there ({error}); fix it"


def require(service: Service, uri: str) -> None:
    """Raises Unreachable with the one line an operator needs when `service` does not answer."""
    error = problem(service, uri)
    if error is None:
        return
    configured = bool(os.environ.get(service.env))
    tail = "" if configured else f" by setting {service.env}"
    raise Unreachable(
        f"{unusable(service, uri, error, configured=configured)}{tail}, "
        f"or start {service.name} at {address(uri)}"
    )
