"""RunQueue: wake-ups for workers. Postgres holds the runs; the queue only says "look".

Losing a wake-up loses no run (the sweeper re-enqueues pending runs from Postgres), so
the queue can stay a plain Redis LIST.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Protocol
from uuid import UUID

from broker.errors import reaching_redis
from broker.keys import Keys
from broker.redis_uri import RedisClient


class RunQueue(Protocol):
    async def push(self, *run_ids: UUID) -> None: ...

    async def push_front(self, *run_ids: UUID) -> None:
        """Ahead of everything waiting: recovered runs resume before new ones start."""
        ...

    async def schedule(self, run_id: UUID, due: float) -> None:
        """Push `run_id` once the epoch time `due` has passed (runs with after_seconds)."""
        ...

    async def promote_due(self) -> int:
        """Moves scheduled runs that are due onto the queue; returns how many."""
        ...

    async def pop(self, timeout: float) -> UUID | None: ...

    async def size(self) -> int: ...


# Atomically moves due members of the delayed ZSET onto the queue LIST.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
  redis.call('LPUSH', KEYS[2], unpack(due))
end
return #due
"""


class RedisRunQueue:
    """LPUSH on submit, BRPOP in workers: FIFO, one delivery per push."""

    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.queue
        self._delayed = keys.delayed
        self._promote = redis.register_script(_PROMOTE)

    async def push(self, *run_ids: UUID) -> None:
        if run_ids:
            with reaching_redis():
                await self._redis.lpush(self._key, *(str(r) for r in run_ids))

    async def push_front(self, *run_ids: UUID) -> None:
        if run_ids:
            with reaching_redis():
                await self._redis.rpush(self._key, *(str(r) for r in run_ids))

    async def schedule(self, run_id: UUID, due: float) -> None:
        with reaching_redis():
            await self._redis.zadd(self._delayed, {str(run_id): due})

    async def promote_due(self) -> int:
        with reaching_redis():
            moved = await self._promote(keys=[self._delayed, self._key], args=[time.time()])
        return int(moved)

    async def pop(self, timeout: float) -> UUID | None:
        with reaching_redis():
            item = await self._redis.brpop([self._key], timeout=timeout)
        if item is None:
            return None
        return UUID(_text(item[1]))

    async def size(self) -> int:
        with reaching_redis():
            return int(await self._redis.llen(self._key))


class LocalRunQueue:
    """The same queue inside one process (for `broker dev` and unit tests)."""

    def __init__(self) -> None:
        self._items: deque[UUID] = deque()
        self._arrived = asyncio.Condition()
        self._delayed: dict[UUID, float] = {}

    async def schedule(self, run_id: UUID, due: float) -> None:
        self._delayed[run_id] = due

    async def promote_due(self) -> int:
        now = time.time()
        due = [run_id for run_id, at in self._delayed.items() if at <= now]
        for run_id in due:
            del self._delayed[run_id]
        await self.push(*due)
        return len(due)

    async def push(self, *run_ids: UUID) -> None:
        async with self._arrived:
            self._items.extend(run_ids)
            self._arrived.notify(len(run_ids))

    async def push_front(self, *run_ids: UUID) -> None:
        async with self._arrived:
            self._items.extendleft(run_ids)
            self._arrived.notify(len(run_ids))

    async def pop(self, timeout: float) -> UUID | None:
        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(lambda: bool(self._items)), timeout)
            except TimeoutError:
                return None
            return self._items.popleft()

    async def size(self) -> int:
        return len(self._items)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
