"""The worker's publisher: order kept, bursts batched, end marker last."""

from __future__ import annotations

import asyncio

from broker.errors import StoreUnavailable
from broker.events import LocalEventBus, end_message, parse_end, sse_frame
from worker.publisher import Publisher


async def test_burst_is_batched_in_order_and_ends_with_marker() -> None:
    bus = LocalEventBus()
    subscription = await bus.subscribe("run")
    publisher = Publisher(bus, "run")
    frames = [sse_frame("custom", str(i).encode()) for i in range(1000)]
    for frame in frames:
        publisher.emit(frame)  # no await: the graph never waits on the bus
    await publisher.close(end_message({"status": "success"}))
    messages = []
    while (message := await subscription.get(0.1)) is not None:
        messages.append(message)
    assert parse_end(messages[-1]) == {"status": "success"}
    assert b"".join(messages[:-1]) == b"".join(frames)
    assert len(messages) - 1 < len(frames) / 10  # batched, not one message per frame


async def test_frames_emitted_while_publishing_still_go_out() -> None:
    bus = LocalEventBus()
    subscription = await bus.subscribe("run")
    publisher = Publisher(bus, "run")
    for i in range(3):
        publisher.emit(sse_frame("custom", str(i).encode()))
        await asyncio.sleep(0)
    await publisher.close(end_message({}))
    received = b""
    while (message := await subscription.get(0.1)) is not None and parse_end(message) is None:
        received += message
    assert received.count(b"event: custom") == 3


async def test_a_batch_redis_refused_is_sent_again_not_dropped() -> None:
    bus = _FlakyBus(failures=3)
    subscription = await bus.subscribe("run")
    publisher = Publisher(bus, "run")
    frames = [sse_frame("custom", str(i).encode()) for i in range(5)]
    for frame in frames:
        publisher.emit(frame)
    await publisher.close(end_message({"status": "success"}))
    messages = []
    while (message := await subscription.get(0.1)) is not None:
        messages.append(message)
    assert b"".join(messages[:-1]) == b"".join(frames)
    assert parse_end(messages[-1]) == {"status": "success"}
    assert bus.refused == 3


class _FlakyBus(LocalEventBus):
    """Refuses its first publishes as Redis does during a failover."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.refused = 0

    async def publish(self, channel: str, message: bytes) -> None:
        if self.refused < self.failures:
            self.refused += 1
            raise StoreUnavailable("Redis", ConnectionError("failing over"))
        await super().publish(channel, message)
