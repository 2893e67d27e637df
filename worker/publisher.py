"""Publishes a run's frames in order, batching whatever queued up during the last publish.

The graph never waits on Redis: `emit` only appends. A single flusher task sends each
batch as one pub/sub message, so a burst of tokens costs one round trip, not hundreds.
For resumable runs every frame also gets an id and goes to the run's event log first,
so a client that reconnects with Last-Event-ID can replay what it missed.

A batch Redis does not take (a failover, a restart) is sent again until it is, for up to
`_RETRY_SECONDS`: frames stay queued meanwhile, so none is dropped; the log skips the
entries it already has, a live subscriber may see a batch twice.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from broker import metrics
from broker.cancelling import stop_if_cancelled
from broker.errors import StoreUnavailable
from broker.events import EventBus, EventLog, with_id

_MAX_BATCH = 256 * 1024  # bytes per pub/sub message; keeps one message from hogging Redis
_BUSY = 0.005  # seconds since the last publish under which the stream counts as busy
_LINGER = 0.002  # seconds a busy stream's next batch waits to gather frames
_RETRY_SECONDS = 30.0  # how long a batch is retried through a Redis outage or failover
_RETRY_PAUSE = 0.25


class Publisher:
    def __init__(
        self,
        bus: EventBus,
        channel: str,
        log: tuple[EventLog, str] | None = None,
        retention: int = 600,
    ) -> None:
        self._bus = bus
        self._channel = channel
        self._log = log
        self._retention = retention
        # Ids grow across attempts: a retry starts from a later millisecond.
        self._base = int(time.time() * 1000)
        self._seq = itertools.count()
        self._frames: list[bytes] = []
        self._ids: list[str] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._lingering: asyncio.Future[None] | None = None
        self._task = asyncio.create_task(self._flush_forever(), name=f"publish:{channel}")

    def emit(self, frame: bytes) -> None:
        if self._log is not None:
            event_id = self._next_id()
            self._ids.append(event_id)
            frame = with_id(frame, event_id)
        self._frames.append(frame)
        self._wake.set()

    async def close(self, final_message: bytes | None) -> None:
        """Flushes every frame, then sends `final_message` (the end marker), if any."""
        await self.drain()
        if final_message is not None:
            await self.end(final_message)

    async def drain(self) -> None:
        """Publishes every frame emitted so far; nothing may be emitted afterwards."""
        self._closing = True
        self._wake.set()
        if self._lingering is not None:
            _settle(self._lingering)  # the run is over: its last batch goes now
        await self._task

    async def end(self, final_message: bytes) -> None:
        """Sends the end marker, after `drain`."""
        end_id = self._next_id()

        async def send() -> None:
            if self._log is not None:
                log, key = self._log
                await log.append(key, [(end_id, final_message)])
                # The log lives as long as the run, then a grace period for late reconnects.
                await log.expire(key, self._retention)
            await self._bus.publish(self._channel, final_message)

        await _retried(send)

    def _next_id(self) -> str:
        return f"{self._base}-{next(self._seq)}"

    async def _flush_forever(self) -> None:
        last_flush = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._frames:
                if not self._closing and time.monotonic() - last_flush < _BUSY:
                    # Under a steady stream a publish per frame or two would cost more than
                    # the graph producing them: let a batch gather first. A lone token
                    # (nothing published within _BUSY) still goes out at once, and so
                    # does the last batch: nothing more will join it.
                    await self._linger()
                await self._flush(self._take_batch())
                last_flush = time.monotonic()
            if self._closing:
                return

    async def _linger(self) -> None:
        """Waits `_LINGER` seconds, or until `drain` is called."""
        loop = asyncio.get_running_loop()
        self._lingering = loop.create_future()
        timer = loop.call_later(_LINGER, _settle, self._lingering)
        try:
            await self._lingering
        finally:
            timer.cancel()
            self._lingering = None

    async def _flush(self, count: int) -> None:
        frames = self._frames[:count]
        ids = self._ids[:count]
        await _retried(lambda: self._send(ids, frames))
        del self._frames[:count]  # only now: a batch Redis did not take is sent again
        del self._ids[:count]

    async def _send(self, ids: list[str], frames: list[bytes]) -> None:
        if self._log is not None:
            log, key = self._log
            await log.append(key, list(zip(ids, frames, strict=True)))
        await self._bus.publish(self._channel, b"".join(frames))
        metrics.EVENTS_PUBLISHED.inc(len(frames))

    def _take_batch(self) -> int:
        """How many queued frames fit in one message (at least one)."""
        size = 0
        for count, frame in enumerate(self._frames):
            if count and size + len(frame) > _MAX_BATCH:
                return count
            size += len(frame)
        return len(self._frames)


async def _retried(send: Callable[[], Awaitable[None]]) -> None:
    deadline = time.monotonic() + _RETRY_SECONDS
    while True:
        try:
            await send()
            return
        except StoreUnavailable as exc:
            stop_if_cancelled(exc)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(_RETRY_PAUSE)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
