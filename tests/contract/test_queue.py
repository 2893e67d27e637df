"""The RunQueue contract: FIFO wake-ups, one delivery each, a bounded wait when empty."""

from __future__ import annotations

import asyncio
import time

from broker.ids import uuid7
from broker.queue import RunQueue


async def test_fifo_and_single_delivery(queue: RunQueue) -> None:
    ids = [uuid7() for _ in range(5)]
    await queue.push(*ids[:2])
    await queue.push(*ids[2:])
    assert await queue.size() == 5
    assert [await queue.pop(1.0) for _ in ids] == ids
    assert await queue.size() == 0


async def test_pop_waits_then_returns_none(queue: RunQueue) -> None:
    started = time.monotonic()
    assert await queue.pop(0.2) is None
    assert time.monotonic() - started >= 0.15


async def test_pop_wakes_on_push(queue: RunQueue) -> None:
    run_id = uuid7()
    waiter = asyncio.create_task(queue.pop(5.0))
    await asyncio.sleep(0.05)
    await queue.push(run_id)
    assert await asyncio.wait_for(waiter, 2.0) == run_id


async def test_concurrent_poppers_each_get_one(queue: RunQueue) -> None:
    ids = {uuid7() for _ in range(20)}
    await queue.push(*ids)
    got = await asyncio.gather(*(queue.pop(1.0) for _ in ids))
    assert set(got) == ids


async def test_scheduled_runs_are_pushed_once_due(queue: RunQueue) -> None:
    soon, later = uuid7(), uuid7()
    await queue.schedule(soon, time.time() - 0.01)
    await queue.schedule(later, time.time() + 60)
    assert await queue.promote_due() == 1
    assert await queue.promote_due() == 0
    assert await queue.pop(1.0) == soon
    assert await queue.pop(0.1) is None


async def test_push_front_goes_ahead_of_waiting_runs(queue: RunQueue) -> None:
    waiting, recovered = uuid7(), uuid7()
    await queue.push(waiting)
    await queue.push_front(recovered)
    assert [await queue.pop(1.0), await queue.pop(1.0)] == [recovered, waiting]
