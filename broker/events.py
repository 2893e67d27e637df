"""EventBus: live, mode-tagged run events over pub/sub, one upstream subscription per process.

A message on a run channel is either encoded SSE frames (relayed to clients as bytes)
or the end marker, which carries the run's final output for `wait` callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from broker import jsonable

log = logging.getLogger(__name__)

_END = b"\x00end:"


def sse_frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One SSE event; `data` is already compact single-line JSON."""
    head = b"event: " + event.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\r\n"
    return head + b"\r\n"


def end_message(result: dict[str, Any]) -> bytes:
    return _END + jsonable.dumps(result)


def parse_end(message: bytes) -> dict[str, Any] | None:
    """The final result if `message` is the end marker, else None."""
    if not message.startswith(_END):
        return None
    result: dict[str, Any] = jsonable.loads(message[len(_END) :])
    return result


class Subscription(Protocol):
    async def get(self, timeout: float) -> bytes | None:
        """The next message, or None if none arrived within `timeout` seconds."""
        ...

    async def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, channel: str, message: bytes) -> None: ...

    async def subscribe(self, channel: str) -> Subscription:
        """Returns once the subscription is live: nothing published after it is missed."""
        ...


class _Listener:
    def __init__(self, bus: _Multiplexer, channel: str) -> None:
        self.channel = channel
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        self._bus = bus

    async def get(self, timeout: float) -> bytes | None:
        try:
            return await asyncio.wait_for(self.messages.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        await self._bus.remove(self)


class _Multiplexer:
    """Fans each channel's messages out to every local listener of it."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[_Listener]] = {}

    def dispatch(self, channel: str, message: bytes) -> None:
        for listener in self.listeners.get(channel, ()):
            listener.messages.put_nowait(message)

    def add(self, channel: str) -> tuple[_Listener, bool]:
        """The new listener and whether it is the channel's first."""
        listener = _Listener(self, channel)
        group = self.listeners.setdefault(channel, set())
        group.add(listener)
        return listener, len(group) == 1

    def discard(self, listener: _Listener) -> bool:
        """Drops a listener; True if its channel has no listeners left."""
        group = self.listeners.get(listener.channel)
        if group is None:
            return False
        group.discard(listener)
        if group:
            return False
        del self.listeners[listener.channel]
        return True

    async def remove(self, listener: _Listener) -> None:
        self.discard(listener)


class LocalEventBus(_Multiplexer):
    """In-process bus with the same semantics (for `broker dev` and unit tests)."""

    async def publish(self, channel: str, message: bytes) -> None:
        self.dispatch(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        listener, _ = self.add(channel)
        return listener


class RedisEventBus(_Multiplexer):
    """One Redis pub/sub connection per process, shared by all of its listeners."""

    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self._redis = redis
        self._pubsub: PubSub = redis.pubsub()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    async def publish(self, channel: str, message: bytes) -> None:
        await self._redis.publish(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        async with self._lock:
            listener, first = self.add(channel)
            if first:
                await self._confirm(channel, self._pubsub.subscribe)
        return listener

    async def remove(self, listener: _Listener) -> None:
        async with self._lock:
            if self.discard(listener):
                await self._pubsub.unsubscribe(listener.channel)

    async def _confirm(self, channel: str, command: Any) -> None:
        future = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = future
        await command(channel)
        self._ensure_reader()
        await asyncio.wait_for(future, 10)

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="event-bus-reader")

    async def _read(self) -> None:
        while True:
            try:
                await self._read_until_idle()
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped connection: redis-py resubscribes on reconnect
                log.warning("event bus: Redis pub/sub connection lost, reconnecting", exc_info=True)
                await asyncio.sleep(0.5)

    async def _read_until_idle(self) -> None:
        async for message in _messages(self._pubsub):
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"])
        if kind == "message":
            self.dispatch(channel, message["data"])
        elif kind == "subscribe":
            future = self._confirmations.pop(channel, None)
            if future is not None and not future.done():
                future.set_result(None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


async def _messages(pubsub: PubSub) -> AsyncIterator[dict[str, Any]]:
    while True:
        message = await pubsub.get_message(timeout=1.0)
        if message is not None:
            yield message


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
