"""Streaming throughput: one run's `custom` events through the broker vs raw Redis pub/sub.

    .venv/bin/python bench/stream.py [--events 10000] [--size 200] [--pace 1] [--json]

Starts its own `broker api` + `broker worker` (fresh database, own Redis prefix), warms
them up with a small run, then streams one run of the `emitter` test graph sending
`--events` custom payloads of about `--size` bytes each to a `langgraph_sdk` client, which
counts them and checks their order. By default the node yields to the event loop after
every payload, as a node relaying a model's tokens does (`--pace 0`: all in one burst).

In the same process it measures the ceiling: redis-py's async pub/sub on this machine,
one publisher pipelining as many messages of the same size, one subscriber counting them.

Rates are events received per second from the first to the last one; "end to end" counts
from the request (for the broker: creating the run, queueing, claiming it, starting the
graph) or from the first publish (raw). Exits 1 if an event was lost or out of order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from langgraph_sdk import get_client
from redis.asyncio import Redis

from bench.harness import Broker, running_broker

TARGET = 0.60  # of the raw pub/sub ceiling
TIMEOUT = 120.0  # seconds either measurement may take; what has not arrived by then is lost
_PAYLOAD_OVERHEAD = len('{"index":10000,"pad":""}')


@dataclass
class Measure:
    sent: int
    received: int = 0
    in_order: bool = True
    started: float = 0.0  # perf_counter() at the request (broker) or first publish (raw)
    first: float = 0.0  # ... at the first message received
    last: float = 0.0  # ... at the last one

    def got(self, index: int | None = None) -> None:
        self.last = time.perf_counter()
        if not self.received:
            self.first = self.last
        if index is not None and index != self.received:
            self.in_order = False
        self.received += 1

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def first_after(self) -> float:
        return self.first - self.started if self.received else float("nan")

    @property
    def per_second(self) -> float:
        seconds = self.last - self.first
        return self.received / seconds if seconds > 0 else 0.0

    @property
    def end_to_end(self) -> float:
        seconds = self.last - self.started
        return self.received / seconds if self.received and seconds > 0 else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "lost": self.lost,
            "first_after": self.first_after,
            "per_second": self.per_second,
            "end_to_end": self.end_to_end,
        }


async def through_broker(
    url: str, events: int, size: int, pace: int, timeout: float = TIMEOUT
) -> Measure:
    measure = Measure(events)
    client = get_client(url=url, api_key=None)
    graph_input = {"count": events, "pad": max(size - _PAYLOAD_OVERHEAD, 0), "pace": pace}

    async def receive() -> None:
        thread = await client.threads.create()
        measure.started = time.perf_counter()
        async for part in client.runs.stream(
            thread["thread_id"], "emitter", input=graph_input, stream_mode="custom"
        ):
            if part.event == "custom":
                measure.got(part.data["index"])

    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receive(), timeout)
    finally:
        await client.aclose()
    return measure


async def raw_pubsub(redis_uri: str, messages: int, size: int, timeout: float = TIMEOUT) -> Measure:
    measure = Measure(messages)
    channel = f"broker-bench-raw-{uuid.uuid4().hex[:8]}"
    subscriber: Redis = Redis.from_url(redis_uri)
    publisher: Redis = Redis.from_url(redis_uri)
    pubsub = subscriber.pubsub()

    async def count() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                measure.got()
                if measure.received == messages:
                    return

    try:
        await pubsub.subscribe(channel)
        while (await pubsub.get_message(timeout=1.0)) is None:  # the subscribe confirmation
            pass
        counting = asyncio.create_task(count())
        payload = b"x" * size
        measure.started = time.perf_counter()
        async with publisher.pipeline(transaction=False) as pipe:
            for _ in range(messages):
                pipe.publish(channel, payload)
            await pipe.execute()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(counting, timeout)
        return measure
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await subscriber.aclose()
        await publisher.aclose()


async def measure(
    broker: Broker, events: int, size: int, pace: int, timeout: float = TIMEOUT
) -> tuple[Measure, Measure]:
    # warm-up: the graph loaded, connections open
    await through_broker(broker.url, 10, size, pace, timeout)
    ours = await through_broker(broker.url, events, size, pace, timeout)
    raw = await raw_pubsub(broker.redis_uri, events, size, timeout)
    return ours, raw


def report(events: int, size: int, pace: int, ours: Measure, raw: Measure) -> dict[str, Any]:
    ratio = ours.per_second / raw.per_second if raw.per_second else 0.0
    verdict = "meets" if ratio >= TARGET else "BELOW"
    style = f"a yield every {pace}" if pace else "one burst"
    print(f"stream benchmark: one run, {events} custom events of ~{size} bytes ({style})")
    print(
        f"  broker → langgraph_sdk: {ours.per_second:>9,.0f} events/s "
        f"(end to end {ours.end_to_end:,.0f}/s), first event after "
        f"{ours.first_after * 1000:.1f} ms, received {ours.received}/{ours.sent}, "
        f"lost {ours.lost}, {'in order' if ours.in_order else 'OUT OF ORDER'}"
    )
    print(
        f"  raw redis-py pub/sub:   {raw.per_second:>9,.0f} msgs/s   "
        f"(end to end {raw.end_to_end:,.0f}/s), received {raw.received}/{raw.sent}, "
        f"lost {raw.lost}"
    )
    print(f"  ratio: {ratio:.0%} of the raw ceiling ({verdict} the {TARGET:.0%} target)")
    return {
        "events": events,
        "size": size,
        "pace": pace,
        "broker": ours.figures(),
        "raw": raw.figures(),
        "ratio": ratio,
        "target": TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C: the broker processes stop, the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=200, help="bytes per event payload")
    parser.add_argument(
        "--pace",
        type=int,
        default=1,
        help="the node yields to the event loop after every PACE events (0: never)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        help="seconds each measurement may take; what has not arrived by then is lost",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    with running_broker() as broker:
        ours, raw = asyncio.run(measure(broker, args.events, args.size, args.pace, args.timeout))
        if ours.lost or not ours.in_order:
            _show_logs(broker)
    summary = report(args.events, args.size, args.pace, ours, raw)
    if args.json:
        print(json.dumps(summary))
    return 0 if ours.lost == 0 and ours.in_order else 1


def _show_logs(broker: Broker) -> None:
    """What the broker processes said, for a run that lost events (on stderr)."""
    for log in sorted(broker.logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-40:]
        print(f"==> {log.name} (last {len(tail)} lines)", *tail, sep="\n", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
