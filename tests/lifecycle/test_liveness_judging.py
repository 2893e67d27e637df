"""A worker judges others dead (a missing liveness key) only once it has itself beaten
for a whole TTL without an outage: a Redis outage or failover stops every worker's beats,
and right after it every key may have expired though each worker lives."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from broker.errors import StoreUnavailable
from broker.lifecycle import RunLifecycle
from broker.runtime import Runtime
from worker.loop import Worker

TTL = 0.3


@dataclasses.dataclass(frozen=True)
class _Recording(RunLifecycle):
    """Records whether each beat may judge; fails while `down` is set."""

    judged: list[bool] = dataclasses.field(default_factory=list)
    down: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def beat(
        self, worker_id: str, ttl: float, requeue_after: float, *, judge: bool = True
    ) -> str:
        if self.down.is_set():
            raise StoreUnavailable("Redis")
        self.judged.append(judge)
        return ""


async def _beats(worker: Worker, count: int, every: float) -> None:
    for _ in range(count):
        with contextlib.suppress(StoreUnavailable):
            await worker._beat()
        await asyncio.sleep(every)


@pytest.mark.parametrize("runtime", ["postgres"], indirect=True)
async def test_deaths_are_judged_after_a_ttl_of_beats_and_again_after_an_outage(
    runtime: Runtime,
) -> None:
    fields = {f.name: getattr(runtime.lifecycle, f.name) for f in dataclasses.fields(RunLifecycle)}
    lifecycle = _Recording(**fields)
    settings = runtime.settings.model_copy(update={"liveness_ttl_seconds": TTL})
    worker = Worker(settings, lifecycle, runtime.checkpointer)
    await _beats(worker, 5, TTL / 2)  # a new worker: not before a TTL of its own beats
    assert lifecycle.judged[:2] == [False, False] and lifecycle.judged[-1] is True
    lifecycle.down.set()
    await _beats(worker, 2, TTL / 2)  # Redis away: no beat, nobody judged
    lifecycle.down.clear()
    lifecycle.judged.clear()
    await _beats(worker, 5, TTL / 2)
    assert lifecycle.judged[:2] == [False, False] and lifecycle.judged[-1] is True
