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
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from broker import jsonable
from broker.cancelling import stop_if_cancelled
from broker.errors import BadRequest, StoreUnavailable, reaching_redis
from broker.redis_uri import RedisClient

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


def last_frame_id(message: bytes) -> str | None:
    """The id of a batch's last frame (None for frames without ids)."""
    start = message.rfind(b"\r\nid: ")
    if start < 0:
        return None
    end = message.find(b"\r\n", start + 6)
    return message[start + 6 : end].decode()


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

    async def after(
        self, key: str, last_id: str, count: int | None = None
    ) -> list[tuple[str, bytes]]:
        """Entries with an id greater than `last_id` ("-1": all of them), in order;
        the first `count` of them if given."""
        ...

    async def expire(self, key: str, seconds: int) -> None: ...


class RedisEventLog:
    """A Redis Stream per run; explicit ids keep the SSE ids and stream ids one and the same."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def append(self, key: str, entries: Sequence[tuple[str, bytes]]) -> None:
        """Idempotent: an entry already there (a retry after a lost reply) is skipped."""
        with reaching_redis():
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry_id, data in entries:
                    pipe.xadd(key, {b"d": data}, id=entry_id)
                results = await pipe.execute(raise_on_error=False)
            for result in results:
                # A cluster's pipeline hands back a node's outage as a result, not raised.
                if isinstance(result, Exception) and _ID_TAKEN not in str(result):
                    raise result

    async def after(
        self, key: str, last_id: str, count: int | None = None
    ) -> list[tuple[str, bytes]]:
        event_id_key(last_id)  # Redis would refuse a malformed id: that is the client's error
        start = "-" if last_id in _FROM_START else f"({last_id}"
        with reaching_redis():
            rows: Any = await self._redis.xrange(key, min=start, max="+", count=count)
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

    async def after(
        self, key: str, last_id: str, count: int | None = None
    ) -> list[tuple[str, bytes]]:
        entries = self._logs.get(key, [])
        if last_id not in _FROM_START:
            bound = event_id_key(last_id)
            entries = [e for e in entries if event_id_key(e[0]) > bound]
        return list(entries[:count])

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


class Overflowed(Exception):
    """The reader of a stream fell further behind than its buffer allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"this stream's client read too slowly: more than {limit} bytes of events "
            "waited for it (BROKER_STREAM_BUFFER_BYTES), so the stream was ended; "
            "reconnect to go on (a resumable run replays what was missed after Last-Event-ID)"
        )


_ITEM_OVERHEAD = 100  # bytes a queued message costs besides its payload (object, slot)
T = TypeVar("T")


class Inbox(Generic[T]):
    """A FIFO of at most `limit` bytes, one reader: the one rule that bounds what a slow
    stream reader costs. A put past the limit overflows it: everything queued is dropped
    at once, nothing more is kept, and the reader's next `get` raises `Overflowed`. The
    writer (the process's pub/sub reader) never waits, so nobody else is slowed.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.size = 0  # bytes queued
        self.overflowed = False
        self._items: deque[tuple[T, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T, size: int) -> None:
        if self.overflowed:
            return
        self._items.append((item, size))
        self.size += size + _ITEM_OVERHEAD
        # One message alone never overflows it: a frame larger than the limit (a big
        # state's `values`) still reaches a reader that keeps up.
        if self.limit is not None and self.size > self.limit and len(self._items) > 1:
            self.overflow()
        self._wake()

    def overflow(self) -> None:
        self.overflowed = True
        self._items.clear()
        self.size = 0
        self._wake()

    async def get(self, timeout: float) -> T | None:
        """The next item, or None after `timeout` seconds without one.

        Not `asyncio.wait_for(queue.get())`: on Python 3.11 that swallows a cancel
        arriving as the item does. Here a cancel always raises, and the item stays queued.
        """
        if not self._items and not self.overflowed:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self.overflowed:
            raise Overflowed(self.limit or 0)
        if not self._items:
            return None
        item, size = self._items.popleft()
        self.size -= size + _ITEM_OVERHEAD
        return item

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Listener:
    def __init__(self, bus: _Multiplexer, channel: str) -> None:
        self.channel = channel
        self.messages: Inbox[bytes] = Inbox(bus.buffer_bytes)
        self._bus = bus

    async def get(self, timeout: float) -> bytes | None:
        """Raises `Overflowed` once its reader fell `buffer_bytes` behind."""
        return await self.messages.get(timeout)

    async def close(self) -> None:
        await self._bus.remove(self)


class _Multiplexer:
    """Fans each channel's messages out to every local listener of it; a listener holds
    at most `buffer_bytes` its reader has not taken (None: no bound)."""

    def __init__(self, buffer_bytes: int | None = None) -> None:
        self.listeners: dict[str, set[_Listener]] = {}
        self.buffer_bytes = buffer_bytes

    def dispatch(self, channel: str, message: bytes) -> None:
        for listener in self.listeners.get(channel, ()):
            listener.messages.put(message, len(message))

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

    # The message types of classic pub/sub; the sharded bus reads SSUBSCRIBE's.
    _MESSAGE = "message"
    _SUBSCRIBED = "subscribe"

    def __init__(self, redis: Redis, buffer_bytes: int | None = None) -> None:
        super().__init__(buffer_bytes)
        self._redis = redis
        self._pubsub: PubSub = redis.pubsub()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._readers: dict[str, asyncio.Task[None]] = {}  # one per pub/sub connection
        self._lost_since: float | None = None  # when the connection went, while it is gone

    async def publish(self, channel: str, message: bytes) -> None:
        with reaching_redis():
            await self._redis.publish(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        async with self._lock:
            listener, first = self.add(channel)
            if first:
                try:
                    await self._confirm(channel)
                except BaseException:
                    self.discard(listener)
                    raise
        return listener

    async def remove(self, listener: _Listener) -> None:
        async with self._lock:
            if self.discard(listener):
                with reaching_redis():
                    await self._unsubscribe(listener.channel)

    async def _subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._ensure_reader("", self._pubsub)

    async def _unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def _confirm(self, channel: str) -> None:
        future = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = future
        with reaching_redis():
            await self._subscribe(channel)
        try:
            await asyncio.wait_for(future, _CONFIRM_SECONDS)
        except TimeoutError as exc:  # the reader never heard Redis acknowledge it
            raise StoreUnavailable("Redis", exc) from exc

    def _ensure_reader(self, name: str, pubsub: PubSub) -> None:
        reader = self._readers.get(name)
        if reader is None or reader.done():
            task = asyncio.create_task(self._read(pubsub), name=f"event-bus-reader{name}")
            self._readers[name] = task

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                async for message in _messages(pubsub):
                    self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: redis-py resubscribes on reconnect
                stop_if_cancelled(exc)  # else `close`, awaiting this reader, would hang
                # An outage repeats this every half second: one line when it starts.
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                    log.warning("event bus: Redis pub/sub connection lost (%r), reconnecting", exc)
                await asyncio.sleep(0.5)
                if await self._rehome(pubsub):
                    return  # its channels are served elsewhere now, with their own reader

    async def _rehome(self, pubsub: PubSub) -> bool:
        """After `pubsub`'s connection failed: True if it is no longer needed. One Redis
        (or Sentinel's master) is reconnected to by redis-py itself."""
        return False

    def _handle(self, message: dict[str, Any]) -> None:
        if self._lost_since is not None:
            away = time.monotonic() - self._lost_since
            log.warning("event bus: Redis pub/sub connection is back (after %.0fs)", away)
            self._lost_since = None
        kind = message["type"]
        channel = _text(message["channel"])
        if kind == self._MESSAGE:
            self.dispatch(channel, message["data"])
        elif kind == self._SUBSCRIBED:
            future = self._confirmations.pop(channel, None)
            if future is not None and not future.done():
                future.set_result(None)

    async def close(self) -> None:
        for reader in self._readers.values():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await self._close_connections()

    async def _close_connections(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


class ShardedRedisEventBus(RedisEventBus):
    """The bus on a Redis Cluster: sharded pub/sub (Redis >= 7), one connection per node.

    Classic PUBLISH is broadcast to every node of a cluster; SPUBLISH goes only to the
    node owning the channel's slot (keys.py hash-tags each channel), so the cluster's
    pub/sub traffic spreads over its masters instead of multiplying. The process holds
    one SSUBSCRIBE connection per node it has listeners on, each with its own reader.
    """

    _MESSAGE = "smessage"
    _SUBSCRIBED = "ssubscribe"

    def __init__(self, redis: RedisCluster, buffer_bytes: int | None = None) -> None:
        # The base's classic PubSub is never used.
        super().__init__(cast(Redis, redis), buffer_bytes)
        self._cluster = redis
        self._shards: dict[str, PubSub] = {}  # node name -> its SSUBSCRIBE connection
        self._shard_of: dict[str, str] = {}  # channel -> the node it was subscribed on

    async def publish(self, channel: str, message: bytes) -> None:
        with reaching_redis():
            await self._cluster.spublish(channel, message)

    async def _subscribe(self, channel: str) -> None:
        await self._cluster.initialize()  # the slot map: a no-op once it is read
        node = self._cluster.get_node_from_key(channel)
        if node is None:  # a slot no node serves: the cluster is down there
            raise RedisConnectionError(f"no Redis Cluster node serves {channel}")
        pubsub = self._shards.get(node.name)
        if pubsub is None:
            # Connections made as the cluster client makes its own to this node.
            pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
            pubsub = PubSub(connection_pool=pool, encoder=self._cluster.encoder)
            self._shards[node.name] = pubsub
        await pubsub.ssubscribe(channel)
        self._shard_of[channel] = node.name
        self._ensure_reader(node.name, pubsub)

    async def _rehome(self, pubsub: PubSub) -> bool:
        """A master failed over: its connection would retry the dead node forever, so the
        channels subscribed on it go to the node now serving their slot (frames published
        in between are lost, as across any pub/sub outage); True once none is left."""
        name = next((n for n, p in self._shards.items() if p is pubsub), None)
        if name is None:
            return True
        try:
            async with self._lock:
                # The slot map as the surviving nodes see it now (the client's own is only
                # refreshed when one of its commands fails).
                await self._cluster.nodes_manager.initialize(last_failed_node_name=name)
                for channel in [c for c, n in self._shard_of.items() if n == name]:
                    node = self._cluster.get_node_from_key(channel)
                    if node is not None and node.name != name:
                        await self._subscribe(channel)
                if name in self._shard_of.values():
                    return False  # not failed over (yet): redis-py keeps reconnecting
                del self._shards[name]
        except Exception as exc:  # the cluster is still settling: try again on the next failure
            stop_if_cancelled(exc)
            log.debug("event bus: cannot re-subscribe yet (%r)", exc)
            return False
        log.warning("event bus: Redis Cluster node %s failed over; its channels moved", name)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await pubsub.connection_pool.disconnect()
        return True

    async def _unsubscribe(self, channel: str) -> None:
        node_name = self._shard_of.pop(channel, None)
        if node_name is not None:
            await self._shards[node_name].sunsubscribe(channel)

    async def _close_connections(self) -> None:
        for pubsub in self._shards.values():
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await pubsub.connection_pool.disconnect()
        await super()._close_connections()


def redis_event_bus(redis: RedisClient, buffer_bytes: int | None = None) -> RedisEventBus:
    """The bus for this client: sharded pub/sub on a cluster, classic pub/sub otherwise."""
    if isinstance(redis, RedisCluster):
        return ShardedRedisEventBus(redis, buffer_bytes)
    return RedisEventBus(redis, buffer_bytes)


async def _messages(pubsub: PubSub) -> AsyncIterator[dict[str, Any]]:
    while True:
        message = await pubsub.get_message(timeout=1.0)
        if message is not None:
            yield message


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
