"""The EventBus contract: live fan-out, ordered, nothing before subscribe, end marker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from broker.events import (
    EventBus,
    EventLog,
    LocalEventLog,
    RedisEventLog,
    end_message,
    parse_end,
    sse_frame,
)
from broker.keys import Keys
from tests.contract.conftest import redis_of


def _channel() -> str:
    return f"broker-contract:run:{uuid.uuid4()}"


async def test_subscriber_gets_messages_in_order(bus: EventBus) -> None:
    channel = _channel()
    subscription = await bus.subscribe(channel)
    frames = [sse_frame("custom", str(i).encode()) for i in range(100)]
    for frame in frames:
        await bus.publish(channel, frame)
    assert [await subscription.get(2.0) for _ in frames] == frames
    await subscription.close()


async def test_fan_out_to_every_local_listener(bus: EventBus) -> None:
    channel = _channel()
    first, second = await bus.subscribe(channel), await bus.subscribe(channel)
    await bus.publish(channel, b"x")
    assert (await first.get(2.0), await second.get(2.0)) == (b"x", b"x")
    await first.close()
    await bus.publish(channel, b"y")
    assert await second.get(2.0) == b"y"
    await second.close()


async def test_no_buffering_before_subscribe(bus: EventBus) -> None:
    channel = _channel()
    await bus.publish(channel, b"early")
    subscription = await bus.subscribe(channel)
    await bus.publish(channel, b"late")
    assert await subscription.get(2.0) == b"late"
    assert await subscription.get(0.1) is None
    await subscription.close()


async def test_channels_are_isolated(bus: EventBus) -> None:
    a, b = _channel(), _channel()
    sub_a = await bus.subscribe(a)
    await bus.publish(b, b"for b")
    await bus.publish(a, b"for a")
    assert await sub_a.get(2.0) == b"for a"
    await sub_a.close()


async def test_end_marker_carries_output(bus: EventBus) -> None:
    channel = _channel()
    subscription = await bus.subscribe(channel)
    await bus.publish(channel, end_message({"status": "success", "output": {"x": 1}}))
    message = await subscription.get(2.0)
    assert message is not None
    assert parse_end(message) == {"status": "success", "output": {"x": 1}}
    assert parse_end(sse_frame("values", b"{}")) is None
    await subscription.close()


async def test_many_concurrent_subscribers_are_all_live(bus: EventBus) -> None:
    channels = [_channel() for _ in range(50)]
    subscriptions = await asyncio.gather(*(bus.subscribe(c) for c in channels * 2))
    for channel in channels:
        await bus.publish(channel, channel.encode())
    for subscription, channel in zip(subscriptions, channels * 2, strict=True):
        assert await subscription.get(2.0) == channel.encode()
    await asyncio.gather(*(s.close() for s in subscriptions))


@pytest.fixture(params=["redis", "cluster", "local"])
async def event_log(request: pytest.FixtureRequest, keys: Keys) -> AsyncIterator[EventLog]:
    if request.param == "local":
        yield LocalEventLog()
        return
    redis = redis_of(request)
    yield RedisEventLog(redis)
    await redis.delete(keys.run_log("appended"))
    await redis.aclose()


async def test_log_append_again_adds_nothing(event_log: EventLog, keys: Keys) -> None:
    """A retried append (its reply lost in a failover) keeps each entry once, in order."""
    key = keys.run_log("appended")
    await event_log.append(key, [("1-0", b"a"), ("1-1", b"b")])
    await event_log.append(key, [("1-0", b"a"), ("1-1", b"b"), ("1-2", b"c")])
    assert await event_log.after(key, "-1") == [("1-0", b"a"), ("1-1", b"b"), ("1-2", b"c")]
