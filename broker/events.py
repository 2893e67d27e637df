"""EventBus: live, mode-tagged run events over pub/sub, one upstream subscription per process.

A message on a run channel is either encoded SSE frames (relayed to clients as bytes)
or the end marker, which carries the run's final output for `wait` callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ResponseError

from broker import jsonable
from broker.errors import BadRequest, StoreUnavailable, reaching_redis

log = logging.getLogger(__name__)

_END = b"\x00end:"
_CONFIRM_SECONDS = 10  # for Redis to acknowledge a SUBSCRIBE


def sse_frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One SSE event; `data` is already compact single-line JSON."""
    head = b"event: " + event.encode() + b"\r\ndata: " + data + b"\r\n"
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\r\n"
    return head + b"\r\n"


def end_message(result: dict[str, Any]) -> bytes:
    return _END + jsonable.dumps(result)


def with_id(frame: bytes, event_id: str) -> bytes:
    """The frame with an `id:` line added (frames end with a blank line)."""
    return frame[:-2] + b"id: " + event_id.encode() + b"\r\n\r\n"


def frame_id(frame: bytes) -> str | None:
    start = frame.find(b"\r\nid: ")
    if start < 0:
        return None
    end = frame.find(b"\r\n", start + 6)
    return frame[start + 6 : end].decode()


def frame_event(frame: bytes) -> str:
    """The event name of an encoded frame (frames start with `event: `)."""
    return frame[7 : frame.find(b"\r\n")].decode()


def frame_data(frame: bytes) -> bytes:
    """A frame's data line (the JSON it carries)."""
    start = frame.find(b"\r\ndata: ") + 8
    return frame[start : frame.find(b"\r\n", start)]


def split_frames(message: bytes) -> list[bytes]:
    """The frames of a batch, each still ending with its blank line."""
    return [part + b"\r\n\r\n" for part in message.split(b"\r\n\r\n") if part]


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


class Silence:
    """The subscription of a run that had already ended: nothing live will come.

    Joining a finished run needs no SUBSCRIBE round trip (nor its unsubscribe).
    """

    async def get(self, timeout: float) -> bytes | None:
        await asyncio.sleep(timeout)
        return None

    async def close(self) -> None:
        return None


class EventBus(Protocol):
    async def publish(self, channel: str, message: bytes) -> None: ...

    async def subscribe(self, channel: str) -> Subscription:
        """Returns once the subscription is live: nothing published after it is missed."""
        ...


class EventLog(Protocol):
    """Stored events of resumable runs, keyed by ids that only grow ("<ms>-<seq>")."""

    async def append(self, key: str, entries: Sequence[tuple[str, bytes]]) -> None: ...

    async def after(self, key: str, last_id: str) -> list[tuple[str, bytes]]:
        """Entries with an id greater than `last_id` ("-1": all of them), in order."""
        ...

    async def expire(self, key: str, seconds: int) -> None: ...


class RedisEventLog:
    """A Redis Stream per run; explicit ids keep the SSE ids and stream ids one and the same."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def append(self, key: str, entries: Sequence[tuple[str, bytes]]) -> None:
        """Idempotent: an entry already there (a retry after a lost reply) is skipped."""
        with reaching_redis():
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry_id, data in entries:
                    pipe.xadd(key, {b"d": data}, id=entry_id)
                results = await pipe.execute(raise_on_error=False)
            for result in results:
                if isinstance(result, ResponseError) and _ID_TAKEN not in str(result):
                    raise result

    async def after(self, key: str, last_id: str) -> list[tuple[str, bytes]]:
        event_id_key(last_id)  # Redis would refuse a malformed id: that is the client's error
        start = "-" if last_id in _FROM_START else f"({last_id}"
        with reaching_redis():
            rows: Any = await self._redis.xrange(key, min=start, max="+")
        return [(_text(entry_id), bytes(fields[b"d"])) for entry_id, fields in rows]

    async def expire(self, key: str, seconds: int) -> None:
        with reaching_redis():
            await self._redis.expire(key, seconds)


class LocalEventLog:
    """The same log in process memory (for `broker dev` and unit tests)."""

    def __init__(self) -> None:
        self._logs: dict[str, list[tuple[str, bytes]]] = {}

    async def append(self, key: str, entries: Sequence[tuple[str, bytes]]) -> None:
        log = self._logs.setdefault(key, [])
        for entry in entries:  # as Redis does: an id not above the last one is not added
            if not log or event_id_key(entry[0]) > event_id_key(log[-1][0]):
                log.append(entry)

    async def after(self, key: str, last_id: str) -> list[tuple[str, bytes]]:
        entries = self._logs.get(key, [])
        if last_id in _FROM_START:
            return list(entries)
        bound = event_id_key(last_id)
        return [e for e in entries if event_id_key(e[0]) > bound]

    async def expire(self, key: str, seconds: int) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, self._logs.pop, key, None)


_FROM_START = ("-1", "0", "", "-")  # what a client sends for "from the first event"
# XADD's refusal of an id at or below the stream's last one: that entry is already in.
_ID_TAKEN = "equal or smaller than the target stream top item"
_EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def event_id_key(event_id: str) -> tuple[int, int]:
    """Orders ids as Redis does: by milliseconds, then sequence (each below 2^64).

    A client's Last-Event-ID that is not such an id is refused (BadRequest)."""
    if event_id in _FROM_START:
        return (-1, -1)
    match = _EVENT_ID.fullmatch(event_id)
    key = (int(match[1]), int(match[2])) if match else (-1, -1)
    if match is None or max(key) >= 2**64:
        raise BadRequest(
            f"Last-Event-ID: '{event_id[:64]}' is not an event id of this stream "
            "(<ms>-<seq>, as sent in the events' `id:` lines)"
        )
    return key


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
        self._lost_since: float | None = None  # when the connection went, while it is gone

    async def publish(self, channel: str, message: bytes) -> None:
        with reaching_redis():
            await self._redis.publish(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        async with self._lock:
            listener, first = self.add(channel)
            if first:
                try:
                    await self._confirm(channel, self._pubsub.subscribe)
                except BaseException:
                    self.discard(listener)
                    raise
        return listener

    async def remove(self, listener: _Listener) -> None:
        async with self._lock:
            if self.discard(listener):
                with reaching_redis():
                    await self._pubsub.unsubscribe(listener.channel)

    async def _confirm(self, channel: str, command: Any) -> None:
        future = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = future
        with reaching_redis():
            await command(channel)
        self._ensure_reader()
        try:
            await asyncio.wait_for(future, _CONFIRM_SECONDS)
        except TimeoutError as exc:  # the reader never heard Redis acknowledge it
            raise StoreUnavailable("Redis", exc) from exc

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="event-bus-reader")

    async def _read(self) -> None:
        while True:
            try:
                await self._read_until_idle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: redis-py resubscribes on reconnect
                # An outage repeats this every half second: one line when it starts.
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                    log.warning("event bus: Redis pub/sub connection lost (%r), reconnecting", exc)
                await asyncio.sleep(0.5)

    async def _read_until_idle(self) -> None:
        async for message in _messages(self._pubsub):
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        if self._lost_since is not None:
            away = time.monotonic() - self._lost_since
            log.warning("event bus: Redis pub/sub connection is back (after %.0fs)", away)
            self._lost_since = None
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
