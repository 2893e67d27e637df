"""A thread's protocol events: its runs' frames (replayed from their logs, then live,
through `ThreadRelay`) translated by one `V2Encoder`, then filtered per subscription."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langgraph_sdk.stream.subscription import matches_subscription

from api.protocol.encoder import Event, V2Encoder, since_event_id
from api.sse import History, ThreadRelay, follower, run_ended
from broker import jsonable
from broker.events import split_frames
from broker.runtime import Runtime
from broker.storage.visibility import Filter

HEARTBEAT = None  # what the event source yields on silence


@dataclass(frozen=True)
class EventFilter:
    """A subscription: channels, namespace prefixes and depth (matched as the SDK
    matches them), and `since`, the last `seq` the client saw."""

    channels: list[str]
    namespaces: list[list[str]] | None = None
    depth: int | None = None
    since: int | None = None

    def wants(self, event: Event) -> bool:
        seq = event.get("seq")
        if self.since is not None and isinstance(seq, int) and seq <= self.since:
            return False
        params: dict[str, Any] = {"channels": self.channels}
        if self.namespaces is not None:
            params["namespaces"] = self.namespaces
        if self.depth is not None:
            params["depth"] = self.depth
        return matches_subscription(event, params)  # type: ignore[arg-type]


async def open_thread(
    runtime: Runtime, thread_id: UUID, since: int | None, filter: Filter | None
) -> AsyncIterator[Event | None]:
    """Joins the thread (its channel and active runs; a hidden or missing thread is
    NotFound, raised before the first event), then yields its events, None on silence."""
    subscription, active = await runtime.service.thread_policy.join(thread_id, filter)
    relay = ThreadRelay(
        subscription,
        active,
        follower(runtime),
        run_ended(runtime),
        runtime.settings.sse_heartbeat_seconds,
        {"run_modes"},
        history=_history(runtime, thread_id, since),
        buffer_bytes=runtime.settings.stream_buffer_bytes,
    )
    return _events(relay)


def _history(runtime: Runtime, thread_id: UUID, since: int | None) -> History:
    after = since_event_id(since) if since is not None else None

    async def history() -> list[tuple[UUID, str, bytes]]:
        return await runtime.service.thread_log(thread_id, after)

    return history


async def _events(relay: ThreadRelay) -> AsyncIterator[Event | None]:
    encoder = V2Encoder()
    async for chunk in relay.frames():
        for frame in split_frames(chunk):
            if frame.startswith(b":"):
                yield HEARTBEAT
                continue
            for event in encoder.feed(frame):
                yield event


def sse_event(event: Event) -> bytes:
    """The SSE frame: `id:` the event's seq, `event:` its method, `data:` the event."""
    head = b"id: " + str(event["seq"]).encode() + b"\n" if "seq" in event else b""
    data: bytes = jsonable.dumps(event)
    method: str = event["method"]
    return head + b"event: " + method.encode() + b"\ndata: " + data + b"\n\n"
