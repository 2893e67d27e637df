"""The worker board: each worker's latest metrics, readable by every API process.

A worker publishes its rendered `metrics.WORKER` registry every heartbeat; each entry
expires after a few missed heartbeats, so the board also says which workers are alive.
Redis for the production topology, a dict for `broker dev` (one process).
"""

from __future__ import annotations

import time
from typing import Protocol

from broker.errors import reaching_redis
from broker.keys import Keys
from broker.redis_uri import RedisClient


class WorkerBoard(Protocol):
    async def publish(self, worker_id: str, metrics: bytes, ttl: float) -> None: ...

    async def leave(self, worker_id: str) -> None: ...

    async def read(self) -> dict[str, bytes]:
        """Every live worker's id and its latest metrics."""
        ...


class RedisWorkerBoard:
    """One key per worker with a TTL, and a SET of their ids to find them without SCAN."""

    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def publish(self, worker_id: str, metrics: bytes, ttl: float) -> None:
        with reaching_redis():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._keys.worker_metrics(worker_id), metrics, px=int(ttl * 1000))
                pipe.sadd(self._keys.workers, worker_id)
                await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        with reaching_redis():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(self._keys.worker_metrics(worker_id))
                pipe.srem(self._keys.workers, worker_id)
                await pipe.execute()

    async def read(self) -> dict[str, bytes]:
        with reaching_redis():
            ids = sorted(_text(i) for i in await self._redis.smembers(self._keys.workers))
            if not ids:
                return {}
            values = await self._redis.mget([self._keys.worker_metrics(i) for i in ids])
            gone = [i for i, value in zip(ids, values, strict=True) if value is None]
            if gone:  # expired: the worker died without leaving
                await self._redis.srem(self._keys.workers, *gone)
        return {i: _bytes(v) for i, v in zip(ids, values, strict=True) if v is not None}


class LocalWorkerBoard:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[bytes, float]] = {}

    async def publish(self, worker_id: str, metrics: bytes, ttl: float) -> None:
        self._entries[worker_id] = (metrics, time.monotonic() + ttl)

    async def leave(self, worker_id: str) -> None:
        self._entries.pop(worker_id, None)

    async def read(self) -> dict[str, bytes]:
        now = time.monotonic()
        return {i: metrics for i, (metrics, until) in self._entries.items() if until > now}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
