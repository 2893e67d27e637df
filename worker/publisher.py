"""Publishes a run's frames in order, batching whatever queued up during the last publish.

The graph never waits on Redis: `emit` only appends. A single flusher task sends each
batch as one pub/sub message, so a burst of tokens costs one round trip, not hundreds.
"""

from __future__ import annotations

import asyncio

from broker.events import EventBus

_MAX_BATCH = 256 * 1024  # bytes per pub/sub message; keeps one message from hogging Redis


class Publisher:
    def __init__(self, bus: EventBus, channel: str) -> None:
        self._bus = bus
        self._channel = channel
        self._frames: list[bytes] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._flush_forever(), name=f"publish:{channel}")

    def emit(self, frame: bytes) -> None:
        self._frames.append(frame)
        self._wake.set()

    async def close(self, final_message: bytes) -> None:
        """Flushes every frame, then sends `final_message` (the end marker)."""
        self._closing = True
        self._wake.set()
        await self._task
        await self._bus.publish(self._channel, final_message)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._frames:
                await self._bus.publish(self._channel, self._take_batch())
            if self._closing:
                return

    def _take_batch(self) -> bytes:
        size = 0
        count = 0
        for frame in self._frames:
            if count and size + len(frame) > _MAX_BATCH:
                break
            size += len(frame)
            count += 1
        batch = b"".join(self._frames[:count])
        del self._frames[:count]
        return batch
