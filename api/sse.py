"""Relaying a run's events to HTTP: SSE streams and the keep-alive JSON of wait/join.

Frames arrive encoded; they are relayed as bytes. Only a join with a `stream_mode`
filter, or a resumed stream that must skip what it replayed, looks inside a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import anyio
from starlette.responses import StreamingResponse

from broker import jsonable, metrics
from broker.errors import NotFound
from broker.events import (
    Inbox,
    Overflowed,
    Silence,
    Subscription,
    event_id_key,
    frame_event,
    frame_id,
    last_frame_id,
    parse_end,
    split_frames,
    sse_frame,
)
from broker.models import Run
from broker.runtime import Runtime
from broker.service import BrokerService
from broker.threads import announced_run

HEARTBEAT = b": heartbeat\r\n\r\n"
KEEPALIVE = b"\n"
IN_FLIGHT_GRACE = 0.2  # seconds to wait for frames already published when a run is seen ended

SSE_HEADERS = {
    "Cache-Control": "no-store",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}

# Asked on silence: None while the run is active, else what it left (for a lost end marker).
Poll = Callable[[], Awaitable[dict[str, Any] | None]]
OnDisconnect = Callable[[], Awaitable[None]]
# A resumable run's logged entries after an event id ("-": all), at most so many.
ReadLog = Callable[[str, int], Awaitable[list[tuple[str, bytes]]]]
LOG_PAGE = 64  # log entries a lagging reader's catch-up holds at once

_background: set[asyncio.Task[None]] = set()


def run_location(run: Run, *, stateless: bool) -> str:
    """The run's URL, as the SDKs parse it from Content-Location."""
    if stateless:
        return f"/runs/{run.run_id}"
    return f"/threads/{run.thread_id}/runs/{run.run_id}"


def sse_response(body: AsyncIterator[bytes], run: Run, *, stateless: bool) -> StreamingResponse:
    location = run_location(run, stateless=stateless)
    headers = {**SSE_HEADERS, "Content-Location": location, "Location": f"{location}/stream"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


def json_stream_response(
    body: AsyncIterator[bytes], run: Run, *, stateless: bool
) -> StreamingResponse:
    join = f"/threads/{run.thread_id}/runs/{run.run_id}/join"
    headers = {"Content-Location": run_location(run, stateless=stateless), "Location": join}
    return StreamingResponse(body, media_type="application/json", headers=headers)


def overflow_frame(exc: Overflowed) -> bytes:
    """What a stream's client is told before a stream it fell behind on is ended."""
    error = {"error": "SlowReader", "message": str(exc)}
    return sse_frame("error", jsonable.dumps(error))


async def told_overflow(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A stream whose client fell too far behind ends with the `error` event saying so."""
    try:
        async for frame in frames:
            yield frame
    except Overflowed as exc:
        yield overflow_frame(exc)


@dataclass
class Resume:
    """How the stream of a resumable run goes on when its client falls behind: from the
    run's event log, page by page as the client takes them, then live again."""

    read: ReadLog
    follow: Callable[[], Awaitable[Subscription]]  # subscribes to the run's channel again


def matches(event: str, modes: set[str]) -> bool:
    """The join filter: exact name, base mode before '|', or any messages event."""
    if event in modes or event.split("|", 1)[0] in modes:
        return True
    return bool(modes & {"messages", "messages-tuple"}) and event.startswith("messages")


@dataclass
class Relay:
    """One client's view of a run's event stream."""

    subscription: Subscription
    heartbeat: float
    poll: Poll
    modes: set[str] | None = None  # a join's stream_mode filter
    finished: bool = False  # the run had ended when we subscribed: nothing live will come
    last_id: str | None = None  # live frames at or before this id were sent already
    on_disconnect: OnDisconnect | None = None
    resume: Resume | None = None  # a resumable run's: a lagging client reads its log
    replay: bool = False  # a reconnect (Last-Event-ID): first the log after `last_id`
    _position: str | None = None  # the id of the last frame taken (a resumable run's)

    async def frames(self) -> AsyncIterator[bytes]:
        ended = False
        metrics.STREAMS_OPEN.inc()
        try:
            self._position = self.last_id
            if self.replay and self.resume is not None:  # read after subscribing: no gap
                async for frame in self._logged(self.resume):
                    yield frame
                self.last_id = self._position
            ended = self.finished or self._position == _LOG_ENDED
            while not ended:
                try:
                    message = await self.subscription.get(self.heartbeat)
                except Overflowed as exc:
                    async for frame in self._fell_behind(exc):
                        yield frame
                    ended = self._position == _LOG_ENDED
                    if self.resume is None:
                        return
                    continue
                if message is None:
                    ended = await self.poll() is not None
                    if not ended:
                        yield HEARTBEAT
                        continue
                    async for frame in self._in_flight():
                        yield frame
                elif parse_end(message) is not None:
                    ended = True
                elif chosen := self._take(message):
                    yield chosen
        finally:
            metrics.STREAMS_OPEN.dec()
            await _shielded(self.subscription.close())
            if not ended and self.on_disconnect is not None:
                _spawn(self.on_disconnect())

    def _take(self, message: bytes) -> bytes:
        metrics.MESSAGES_RELAYED.inc()
        if self.resume is not None:
            self._position = last_frame_id(message) or self._position
        return self._select(message)

    async def _fell_behind(self, exc: Overflowed) -> AsyncIterator[bytes]:
        """The client is told and dropped, or (a resumable run's) catches up."""
        if self.resume is None:
            metrics.SLOW_READERS.labels("dropped").inc()
            yield overflow_frame(exc)
            return
        metrics.SLOW_READERS.labels("caught_up").inc()
        async for frame in self._catch_up(self.resume):
            yield frame

    async def _catch_up(self, resume: Resume) -> AsyncIterator[bytes]:
        """The client fell too far behind the live stream (its queued frames are gone):
        it reads the run's log from where it was, one page held at a time, until it has
        caught up; then it listens again, after reading what the log got meanwhile."""
        await _shielded(self.subscription.close())
        self.subscription = Silence()
        async for frame in self._logged(resume):
            yield frame
        if self._position != _LOG_ENDED:
            self.subscription = await resume.follow()
            async for frame in self._logged(resume):
                yield frame
        self.last_id = self._position  # live frames up to here came from the log

    async def _logged(self, resume: Resume) -> AsyncIterator[bytes]:
        """The log after the position, a page at a time, to its end for now (or the
        run's end marker)."""
        while self._position != _LOG_ENDED:
            page = await resume.read(self._position or "-", LOG_PAGE)
            for entry_id, data in page:
                if parse_end(data) is not None:
                    self._position = _LOG_ENDED
                    return
                self._position = entry_id
                if self.modes is None or matches(frame_event(data), self.modes):
                    metrics.MESSAGES_RELAYED.inc()
                    yield data
            if len(page) < LOG_PAGE:
                return

    async def _in_flight(self) -> AsyncIterator[bytes]:
        """The run ended and its end marker has not come (yet): its last frames were
        published before it ended, so relay whatever is still on its way."""
        while True:
            try:
                message = await self.subscription.get(IN_FLIGHT_GRACE)
            except Overflowed as exc:
                async for frame in self._fell_behind(exc):
                    yield frame
                return
            if message is None or parse_end(message) is not None:
                return
            if chosen := self._take(message):
                yield chosen

    def _select(self, message: bytes) -> bytes:
        if self.modes is None and self.last_id is None:
            return message
        return b"".join(f for f in split_frames(message) if self._wanted(f))

    def _wanted(self, frame: bytes) -> bool:
        if replayed(frame, self.last_id):
            return False
        return self.modes is None or matches(frame_event(frame), self.modes)


_LOG_ENDED = "end"  # the position once the log's end marker was read


def replayed(frame: bytes, last_id: str | None) -> bool:
    """A live frame that a replay up to `last_id` already sent (frames without an id —
    runs that are not resumable — never were)."""
    if last_id is None:
        return False
    event_id = frame_id(frame)
    return event_id is not None and event_id_key(event_id) <= event_id_key(last_id)


async def final_output(
    subscription: Subscription,
    keepalive: float,
    poll: Poll,
    on_disconnect: OnDisconnect | None = None,
    *,
    finished: bool = False,
) -> AsyncIterator[bytes]:
    """Newlines while the run goes on, then its final output as one JSON document.

    `finished`: the run had ended before we subscribed, so no end marker will come.
    """
    ended = False
    output: dict[str, Any] | None = None
    try:
        if finished:
            output = await poll()
        while output is None:
            message, subscription = await _next(subscription, keepalive)
            end = parse_end(message) if message is not None else None
            if end is not None:
                output = end.get("output", {})
            elif message is None and (output := await poll()) is None:
                yield KEEPALIVE
        ended = True
        yield jsonable.dumps(output)
    finally:
        await _shielded(subscription.close())
        if not ended and on_disconnect is not None:
            _spawn(on_disconnect())


async def await_output(subscription: Subscription, heartbeat: float, poll: Poll) -> dict[str, Any]:
    """The run's final output once it has ended, for protocols that answer only then
    (MCP's tools/call, A2A's message/send): from its end marker, or asked on silence."""
    try:
        while True:
            message, subscription = await _next(subscription, heartbeat)
            end = parse_end(message) if message is not None else None
            if end is not None:
                output: dict[str, Any] = end.get("output") or {}
                return output
            if message is None and (polled := await poll()) is not None:
                return polled
    finally:
        await _shielded(subscription.close())


async def _next(subscription: Subscription, timeout: float) -> tuple[bytes | None, Subscription]:
    """A message for callers that want only the run's end: one whose frames piled up
    past the buffer (a burst faster than we read) drops them and asks on silence instead."""
    try:
        return await subscription.get(timeout), subscription
    except Overflowed:
        await subscription.close()
        return None, Silence()


def poller(service: BrokerService, run: Run) -> Poll:
    """Checks, on silence, whether the run ended without our seeing its end marker."""

    async def poll() -> dict[str, Any] | None:
        return await service.result(run.run_id)

    return poll


async def _shielded(work: Awaitable[None]) -> None:
    # A client that went away cancels the response's task group; cleanup must still run.
    with anyio.CancelScope(shield=True):
        await work


def _spawn(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


# -- a thread's stream --------------------------------------------------------------------

THREAD_MODES = ("run_modes", "lifecycle", "state_update")

# The status of a run that has ended, or None while it is active (asked on silence).
RunEnded = Callable[[UUID], Awaitable[str | None]]
Follow = Callable[[UUID], Awaitable[Subscription]]
# A thread's resumable runs' logged frames after a Last-Event-ID: (run, event id, message).
History = Callable[[], Awaitable[list[tuple[UUID, str, bytes]]]]


def run_done(run_id: UUID, status: str) -> bytes:
    return sse_frame("run_done", jsonable.dumps({"run_id": str(run_id), "status": status}))


@dataclass
class ThreadRelay:
    """One client's view of a thread, open until the client goes away.

    Listens to the thread's channel and to the channel of each of its runs (joined at
    the start, or announced later): `run_modes` relays every frame of every run and
    `run_done` after each; `lifecycle` only each run's `metadata` frame (its start) and
    `run_done`; `state_update` the runs' `values` frames and those of state edits.
    Each subscription feeds one inbox (a pump task per channel), bounded as a
    listener is: a client that falls `buffer_bytes` behind makes `frames` raise
    `Overflowed` (its stream tells it so and ends).
    """

    thread: Subscription
    runs: list[UUID]  # the runs pending or running when the client joined
    follow: Follow  # subscribes to a run's channel
    ended: RunEnded
    heartbeat: float
    modes: set[str]
    history: History | None = None  # a reconnect (Last-Event-ID) replays this first
    last_id: str | None = None  # live frames at or before this id were replayed already
    buffer_bytes: int | None = None
    _inbox: Inbox[tuple[UUID | None, bytes]] = field(init=False)
    _pumps: dict[UUID | None, tuple[Subscription, asyncio.Task[None]]] = field(default_factory=dict)
    _followed: set[UUID] = field(default_factory=set)  # once each (listed and announced)
    _finished: set[UUID] = field(default_factory=set)  # run_done once each

    def __post_init__(self) -> None:
        self._inbox = Inbox(self.buffer_bytes)

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            self._pump(None, self.thread)
            for run_id in self.runs:
                await self._follow(run_id)
            async for frame in self._replay():  # read after subscribing: nothing falls between
                yield frame
            while True:
                item = await self._inbox.get(self.heartbeat)
                if item is None:
                    async for frame in self._settle_quiet_runs():
                        yield frame
                    yield HEARTBEAT
                    continue
                source, message = item
                if chosen := await self._handle(source, message):
                    yield chosen
        finally:
            await _shielded(self._close_all())

    async def _replay(self) -> AsyncIterator[bytes]:
        if self.history is None:
            return
        for run_id, event_id, message in await self.history():
            self._followed.add(run_id)  # a run whose end is replayed is not followed again
            if chosen := await self._handle(run_id, message):
                yield chosen
            if parse_end(message) is None:
                self.last_id = event_id

    async def _handle(self, source: UUID | None, message: bytes) -> bytes:
        if source is None:  # the thread's channel: announcements are followed by the pump
            return message if "state_update" in self.modes else b""
        end = parse_end(message)
        if end is not None:
            if source in self._pumps:
                await self._drop(source)
            return self._done(source, str(end.get("status", "success")))
        if self.last_id is not None:
            message = b"".join(f for f in split_frames(message) if not replayed(f, self.last_id))
        if "run_modes" in self.modes:
            return message
        wanted = {"metadata"} if "lifecycle" in self.modes else set()
        wanted |= {"values"} if "state_update" in self.modes else set()
        return b"".join(f for f in split_frames(message) if frame_event(f) in wanted)

    def _done(self, run_id: UUID, status: str) -> bytes:
        if run_id in self._finished:  # replayed, then heard live, or found on silence
            return b""
        self._finished.add(run_id)
        return run_done(run_id, status) if self.modes & {"run_modes", "lifecycle"} else b""

    async def _settle_quiet_runs(self) -> AsyncIterator[bytes]:
        """On silence: runs that ended without our hearing their end marker (it came
        before we subscribed, or was lost) get their run_done now."""
        for run_id in [key for key in self._pumps if key is not None]:
            status = await self.ended(run_id)
            if status is not None:
                await self._drop(run_id)
                if done := self._done(run_id, status):
                    yield done

    async def _follow(self, run_id: UUID) -> None:
        if run_id not in self._followed:
            self._followed.add(run_id)
            self._pump(run_id, await self.follow(run_id))

    def _pump(self, source: UUID | None, subscription: Subscription) -> None:
        async def pump() -> None:
            while True:
                try:
                    message = await subscription.get(self.heartbeat)
                except Overflowed:
                    self._inbox.overflow()
                    return
                if message is None:
                    continue
                run_id = announced_run(message) if source is None else None
                if run_id is not None:
                    await self._follow(run_id)  # at once: the run may start any moment
                else:
                    self._inbox.put((source, message), len(message))

        self._pumps[source] = (subscription, asyncio.ensure_future(pump()))

    async def _drop(self, source: UUID | None) -> None:
        subscription, task = self._pumps.pop(source)
        await _stopped(task)
        await subscription.close()

    async def _close_all(self) -> None:
        for source in list(self._pumps):
            await self._drop(source)


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancels a pump until it is done. A subscription's `get` no longer swallows a
    cancel (as `asyncio.wait_for` did on Python 3.11), but others may."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def resumer(runtime: Runtime, run: Run) -> Resume | None:
    """How a lagging client of a resumable run reads on from its log (None: not resumable)."""
    if not run.options.resumable:
        return None
    service = runtime.service

    async def read(after: str, count: int) -> list[tuple[str, bytes]]:
        key = service.keys.run_log(run.run_id)
        return await service.messaging.log.after(key, after, count)

    async def follow() -> Subscription:
        return await service.bus.subscribe(service.keys.run_channel(run.run_id))

    return Resume(read, follow)


def follower(runtime: Runtime) -> Follow:
    async def follow(run_id: UUID) -> Subscription:
        return await runtime.service.bus.subscribe(runtime.service.keys.run_channel(run_id))

    return follow


def run_ended(runtime: Runtime) -> RunEnded:
    async def ended(run_id: UUID) -> str | None:
        try:
            run = await runtime.runs.get(run_id)
        except NotFound:  # deleted with its thread, or a stateless run's
            return "interrupted"
        return None if run.status.active else run.status.value

    return ended
