"""Relaying a run's events to HTTP: SSE streams and the keep-alive JSON of wait/join."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import StreamingResponse

from broker import jsonable
from broker.events import Subscription, parse_end
from broker.models import Run

HEARTBEAT = b": heartbeat\r\n\r\n"
KEEPALIVE = b"\n"

SSE_HEADERS = {
    "Cache-Control": "no-store",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


def run_urls(run: Run, *, stateless: bool) -> tuple[str, str]:
    """(Content-Location, thread-level base) for a run, as the SDKs parse them."""
    if stateless:
        return f"/runs/{run.run_id}", f"/runs/{run.run_id}"
    base = f"/threads/{run.thread_id}/runs/{run.run_id}"
    return base, base


def sse_response(body: AsyncIterator[bytes], run: Run, *, stateless: bool) -> StreamingResponse:
    content_location, base = run_urls(run, stateless=stateless)
    headers = {**SSE_HEADERS, "Content-Location": content_location, "Location": f"{base}/stream"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


def wait_response(body: AsyncIterator[bytes], run: Run, *, stateless: bool) -> StreamingResponse:
    content_location, _ = run_urls(run, stateless=stateless)
    join = f"/threads/{run.thread_id}/runs/{run.run_id}/join"
    headers = {"Content-Location": content_location, "Location": join}
    return StreamingResponse(body, media_type="application/json", headers=headers)


# Asked on silence: None while the run is active, else what it left (for a lost end marker).
Poll = Callable[[], Awaitable[dict[str, Any] | None]]


async def relay(subscription: Subscription, heartbeat: float, poll: Poll) -> AsyncIterator[bytes]:
    """Encoded frames as they arrive, a heartbeat comment on silence, until the run ends."""
    try:
        while True:
            message = await subscription.get(heartbeat)
            if message is None:
                if await poll() is not None:
                    return
                yield HEARTBEAT
            elif parse_end(message) is not None:
                return
            else:
                yield message
    finally:
        await subscription.close()


async def final_output(
    subscription: Subscription, keepalive: float, poll: Poll
) -> AsyncIterator[bytes]:
    """Newlines while the run goes on, then its final output as one JSON document."""
    try:
        while True:
            message = await subscription.get(keepalive)
            if message is None:
                output = await poll()
                if output is not None:
                    yield jsonable.dumps(output)
                    return
                yield KEEPALIVE
                continue
            end = parse_end(message)
            if end is not None:
                yield jsonable.dumps(end.get("output", {}))
                return
    finally:
        await subscription.close()
