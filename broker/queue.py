"""RunQueue: wake-ups for workers. Postgres holds the runs; the queue only says "look".

Losing a wake-up loses no run (the sweeper re-enqueues pending runs from Postgres), so
the queue can stay a plain Redis LIST.
"""

from __future__ import annotations

import asyncio
from typing import Protocol
from uuid import UUID

from redis.asyncio import Redis

from broker.keys import Keys


class RunQueue(Protocol):
    async def push(self, *run_ids: UUID) -> None: ...

    async def pop(self, timeout: float) -> UUID | None: ...

    async def size(self) -> int: ...


class RedisRunQueue:
    """LPUSH on submit, BRPOP in workers: FIFO, one delivery per push."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.queue

    async def push(self, *run_ids: UUID) -> None:
        if run_ids:
            await self._redis.lpush(self._key, *(str(r) for r in run_ids))

    async def pop(self, timeout: float) -> UUID | None:
        item = await self._redis.brpop([self._key], timeout=timeout)
        if item is None:
            return None
        return UUID(_text(item[1]))

    async def size(self) -> int:
        return int(await self._redis.llen(self._key))


class LocalRunQueue:
    """The same queue inside one process (for `broker dev` and unit tests)."""

    def __init__(self) -> None:
        self._items: asyncio.Queue[UUID] = asyncio.Queue()

    async def push(self, *run_ids: UUID) -> None:
        for run_id in run_ids:
            self._items.put_nowait(run_id)

    async def pop(self, timeout: float) -> UUID | None:
        try:
            return await asyncio.wait_for(self._items.get(), timeout)
        except TimeoutError:
            return None

    async def size(self) -> int:
        return self._items.qsize()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
