"""The publisher under a steady trickle: batched (the producer yields after every frame),
while a lone frame still goes out at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from broker.events import end_message, parse_end, sse_frame
from worker.publisher import Publisher


def _spend(seconds: float) -> None:
    """CPU work that holds the event loop, as encoding or a client library's code does."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


class SlowBus:
    """Records each publish; each costs CPU and a round trip, as a Redis client's does."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, bytes]] = []

    async def publish(self, channel: str, message: bytes) -> None:
        _spend(0.0002)  # building the command, parsing the reply: the event loop waits
        await asyncio.sleep(0)
        self.messages.append((time.monotonic(), message))

    async def subscribe(self, channel: str) -> object:  # pragma: no cover - unused
        raise NotImplementedError


async def test_a_steady_stream_is_batched_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # A longer linger than in production keeps the count of batches far from the count of
    # frames even on a loaded machine; without the linger there is a publish per frame.
    monkeypatch.setattr("worker.publisher._LINGER", 0.005)
    bus = SlowBus()
    publisher = Publisher(bus, "run")  # type: ignore[arg-type]
    frames = [sse_frame("custom", str(i).encode()) for i in range(500)]
    for frame in frames:
        publisher.emit(frame)
        _spend(0.00005)  # producing a frame costs the graph some CPU too
        await asyncio.sleep(0)  # a node relaying tokens gives the loop a turn each time
    await publisher.close(end_message({}))
    messages = [message for _, message in bus.messages]
    assert parse_end(messages[-1]) == {}
    assert b"".join(messages[:-1]) == b"".join(frames)
    assert len(messages) - 1 < len(frames) / 10


async def test_a_lone_frame_is_not_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.publisher._LINGER", 1.0)  # would show as a 1 s delay
    bus = SlowBus()
    publisher = Publisher(bus, "run")  # type: ignore[arg-type]
    started = time.monotonic()
    for i in range(3):
        publisher.emit(sse_frame("messages", str(i).encode()))
        await asyncio.sleep(0.02)  # tokens of a real model are milliseconds apart
        assert len(bus.messages) == i + 1
    await publisher.close(end_message({}))
    assert len(bus.messages) == 4
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("pause", [0.0, 0.01], ids=["before-it-lingers", "while-it-lingers"])
async def test_the_last_batch_is_not_held_back(
    monkeypatch: pytest.MonkeyPatch, pause: float
) -> None:
    """A run's final frames go out as soon as it ends (`runs.wait` waits on them), whether
    it ends before the flusher starts lingering for more frames or while it does."""
    monkeypatch.setattr("worker.publisher._LINGER", 1.0)
    bus = SlowBus()
    publisher = Publisher(bus, "run")  # type: ignore[arg-type]
    publisher.emit(sse_frame("metadata", b"{}"))
    await asyncio.sleep(0.001)  # the first frame is out: the next one would linger
    publisher.emit(sse_frame("values", b"{}"))
    if pause:  # else the run ends before the flusher has had a turn
        await asyncio.sleep(pause)
    started = time.monotonic()
    await publisher.close(end_message({}))
    assert time.monotonic() - started < 0.5
    assert len(bus.messages) == 3
