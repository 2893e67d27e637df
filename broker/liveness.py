"""Worker liveness: who died, told in a second or two instead of a lease.

Each worker refreshes a key of its own with a short TTL (`BROKER_LIVENESS_TTL_SECONDS`)
every `BROKER_LIVENESS_SECONDS` and keeps its id in a SET. A worker in the SET whose key
has expired died (kill -9, OOM, a lost host) or stalled: the sweeper hands its runs to
others through the ledger, whose fencing (the claim's attempt) shuts out a stalled one
that comes back. The lease in Postgres stays the backstop when Redis is away.

Losing Redis' data (a flush, a restart without persistence) loses the SET with the
keys, so it never makes a live worker look dead; and the epoch key, which never
expires, goes with it: the worker that writes it again requeues every pending run from
Postgres at once, instead of waiting for `BROKER_REQUEUE_SECONDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from broker.errors import reaching_redis
from broker.keys import Keys
from broker.redis_uri import RedisClient


@dataclass(frozen=True)
class Beat:
    dead: list[str] = field(default_factory=list)  # workers whose key expired
    reset: bool = False  # the epoch key was missing: Redis lost its data (or is new)


class Liveness(Protocol):
    async def beat(self, worker_id: str, ttl: float) -> Beat:
        """Says `worker_id` lives for `ttl` more seconds; who died, and whether Redis
        lost its data since the last beat (True for one caller only)."""
        ...

    async def forget(self, *worker_ids: str) -> None:
        """Workers whose runs were recovered: no longer looked at."""
        ...

    async def leave(self, worker_id: str) -> None:
        """A worker stopping: it counts as dead at once (its leftover runs are recovered)."""
        ...


class RedisLiveness:
    """Per beat: one pipeline (SET PX, SADD, SMEMBERS, SET NX) and one MGET."""

    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def beat(self, worker_id: str, ttl: float) -> Beat:
        keys = self._keys
        with reaching_redis():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.worker_alive(worker_id), b"1", px=max(1, int(ttl * 1000)))
                pipe.sadd(keys.alive, worker_id)
                pipe.smembers(keys.alive)
                pipe.set(keys.epoch, b"1", nx=True)
                _, _, members, reset = await pipe.execute()
            others = sorted(m for m in map(_text, members) if m != worker_id)
            values = (
                await self._redis.mget([keys.worker_alive(w) for w in others]) if others else []
            )
        dead = [w for w, value in zip(others, values, strict=True) if value is None]
        return Beat(dead, bool(reset))

    async def forget(self, *worker_ids: str) -> None:
        if worker_ids:
            with reaching_redis():
                await self._redis.srem(self._keys.alive, *worker_ids)

    async def leave(self, worker_id: str) -> None:
        with reaching_redis():
            await self._redis.delete(self._keys.worker_alive(worker_id))


class LocalLiveness:
    """`broker dev`: one process, whose runs it recovers at start (`recover_all`)."""

    async def beat(self, worker_id: str, ttl: float) -> Beat:
        return Beat()

    async def forget(self, *worker_ids: str) -> None:
        return None

    async def leave(self, worker_id: str) -> None:
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
