"""A stream reader that falls behind costs a bounded buffer: past it, it is told and
dropped, or (a resumable run's) reads on from the run's log; other listeners go on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.sse import LOG_PAGE, Relay, Resume, ThreadRelay, told_overflow
from broker import jsonable, metrics
from broker.events import (
    Inbox,
    LocalEventBus,
    LocalEventLog,
    Overflowed,
    Subscription,
    end_message,
    sse_frame,
    with_id,
)

LIMIT = 64 * 1024


def _frame(n: int, size: int = 1000) -> bytes:
    return sse_frame("values", jsonable.dumps({"n": n, "pad": "x" * size}))


async def _never_ends() -> dict[str, Any] | None:
    return None


async def test_a_cancel_arriving_with_the_item_is_not_swallowed() -> None:
    """`asyncio.wait_for(queue.get())` on 3.11 returned the item and lost the cancel."""
    bus = LocalEventBus()
    listener = await bus.subscribe("run")
    getter = asyncio.ensure_future(listener.get(5.0))
    for _ in range(3):
        await asyncio.sleep(0)  # the getter waits
    await bus.publish("run", b"item")  # its wait is resolved...
    getter.cancel()  # ...and the cancel comes before it runs again
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await listener.get(0.01) == b"item"  # nothing lost either


async def test_get_times_out_with_none() -> None:
    assert await Inbox[bytes]().get(0.01) is None


async def test_a_listener_past_its_buffer_drops_what_it_held_others_go_on() -> None:
    bus = LocalEventBus(LIMIT)
    slow, quick = await bus.subscribe("run"), await bus.subscribe("run")
    sent = [_frame(n) for n in range(200)]  # ~200 KB: past the slow one's 64 KiB
    received = []
    for frame in sent:
        await bus.publish("run", frame)
        received.append(await quick.get(1.0))
    assert received == sent
    listener: Any = slow
    assert listener.messages.size == 0  # its memory is freed at once, not on its next read
    with pytest.raises(Overflowed, match="BROKER_STREAM_BUFFER_BYTES"):
        await slow.get(1.0)
    await bus.publish("run", _frame(0))
    assert listener.messages.size == 0  # and it keeps nothing more


async def test_one_message_larger_than_the_buffer_still_reaches_a_reader_keeping_up() -> None:
    bus = LocalEventBus(LIMIT)
    listener = await bus.subscribe("run")
    big = _frame(0, size=4 * LIMIT)
    await bus.publish("run", big)
    assert await listener.get(1.0) == big


async def test_a_lagging_client_of_a_plain_run_is_told_why_and_dropped() -> None:
    bus = LocalEventBus(LIMIT)
    subscription = await bus.subscribe("run")
    for n in range(200):
        await bus.publish("run", _frame(n))

    def dropped() -> float | None:
        return metrics.API.get_sample_value("broker_api_slow_readers_total", {"outcome": "dropped"})

    before = dropped() or 0.0
    frames = [f async for f in Relay(subscription, 5.0, _never_ends).frames()]
    assert len(frames) == 1 and frames[0].startswith(b"event: error\r\n")
    assert b"SlowReader" in frames[0]
    assert dropped() == before + 1


async def test_a_lagging_client_of_a_resumable_run_reads_on_from_its_log() -> None:
    bus, log = LocalEventBus(LIMIT), LocalEventLog()
    subscription = await bus.subscribe("run")

    async def publish(n: int) -> None:
        frame = with_id(_frame(n), f"1-{n}")
        await log.append("log", [(f"1-{n}", frame)])
        await bus.publish("run", frame)

    async def read(after: str, count: int) -> list[tuple[str, bytes]]:
        return await log.after("log", after, count)

    async def follow() -> Subscription:
        return await bus.subscribe("run")

    relay = Relay(subscription, 5.0, _never_ends, resume=Resume(read, follow))
    frames = relay.frames()
    await publish(0)
    assert b'"n":0' in await anext(frames)
    for n in range(1, 300):  # the client reads nothing meanwhile: its listener overflows
        await publish(n)
    received = [await anext(frames) for _ in range(299)]  # from the log, then live
    for n in range(300, 310):
        await publish(n)
        received.append(await anext(frames))
    await log.append("log", [("1-999", end_message({"status": "success"}))])
    await bus.publish("run", end_message({"status": "success"}))
    received += [f async for f in frames]
    assert [jsonable.loads(f.split(b"data: ")[1].split(b"\r\n")[0])["n"] for f in received] == [
        *range(1, 310)
    ]


async def test_a_lagging_client_of_a_thread_is_told_why_and_dropped() -> None:
    bus = LocalEventBus(LIMIT)
    thread = await bus.subscribe("thread")

    async def follow(run_id: Any) -> Subscription:
        return await bus.subscribe(str(run_id))

    async def ended(run_id: Any) -> str | None:
        return None

    relay = ThreadRelay(thread, [], follow, ended, 5.0, {"state_update"}, buffer_bytes=LIMIT)
    frames = told_overflow(relay.frames())
    await bus.publish("thread", _frame(0))
    assert b'"n":0' in await anext(frames)
    for n in range(1, 300):
        await bus.publish("thread", _frame(n))
    await asyncio.sleep(0.05)  # the pump moves them to the relay's inbox, which overflows
    rest = [f async for f in frames]
    assert len(rest) == 1 and b"SlowReader" in rest[0]


async def test_a_reconnect_reads_the_log_a_page_at_a_time_then_live() -> None:
    bus, log = LocalEventBus(LIMIT), LocalEventLog()
    reads: list[int] = []
    entries = [(f"1-{n}", with_id(_frame(n, 10), f"1-{n}")) for n in range(200)]
    await log.append("log", entries)

    async def read(after: str, count: int) -> list[tuple[str, bytes]]:
        page = await log.after("log", after, count)
        reads.append(len(page))
        return page

    async def follow() -> Subscription:
        return await bus.subscribe("run")

    relay = Relay(
        await bus.subscribe("run"),
        5.0,
        _never_ends,
        last_id="1-49",
        replay=True,
        resume=Resume(read, follow),
    )
    frames = relay.frames()
    received = [await anext(frames) for _ in range(150)]
    assert max(reads) == LOG_PAGE  # never the whole log at once
    await bus.publish("run", entries[199][1])  # live, already sent from the log: dropped
    live = with_id(_frame(200, 10), "1-200")
    await bus.publish("run", live)
    received.append(await anext(frames))
    indexes = [jsonable.loads(f.split(b"data: ")[1].split(b"\r\n")[0])["n"] for f in received]
    assert indexes == [*range(50, 201)]
