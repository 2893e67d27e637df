"""The thread-centric streaming protocol (`client.threads.stream`): commands over HTTP,
events over SSE (`POST …/stream/events`) or a WebSocket on the same path, which also
takes commands in-band. Translation lives in api/protocol/, policy in the service."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.responses import Response, StreamingResponse

from api.auth.authorize import AuthorizeDep, Authorizer, authorizer_of
from api.deps import RuntimeDep
from api.protocol.commands import CODES, CommandFailed, execute
from api.protocol.schemas import EventStreamRequest, ProtocolCommand
from api.protocol.stream import EventFilter, open_thread, sse_event
from api.responses import JSON
from api.sse import SSE_HEADERS
from broker import jsonable
from broker.errors import BrokerError, StoreUnavailable
from broker.events import Overflowed
from broker.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(prefix="/threads", tags=["thread streaming"])

EVENTS_PATH = "/{thread_id}/stream/events"


@router.post(
    "/{thread_id}/commands",
    responses={200: {"description": "ProtocolSuccess: `{type, id, result}`"}},
)
async def command(
    thread_id: UUID, body: ProtocolCommand, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    """One protocol command (`run.start`, `input.respond`); refused ones answer a 4xx
    whose body is both `{"detail"}` and the protocol's error envelope."""
    try:
        result = await execute(runtime, authorize, thread_id, body)
    except CommandFailed as failed:
        return JSON(failed.response(body.id), status_code=failed.status)
    return JSON({"type": "success", "id": body.id, "result": result})


@router.post(
    EVENTS_PATH,
    responses={200: {"content": {"text/event-stream": {}}, "description": "protocol events"}},
)
async def stream_events(
    thread_id: UUID, body: EventStreamRequest, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    """The thread's events matching the body's filter, replayed from `since` (or from the
    start of its current run), then live until the client goes away."""
    filter = await authorize("threads", "read", {"thread_id": thread_id})
    wanted = EventFilter(body.channels, body.namespaces, body.depth, body.since)
    events = await open_thread(runtime, thread_id, body.since, filter)
    return StreamingResponse(
        _sse(events, wanted), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _sse(
    events: AsyncIterator[dict[str, Any] | None], wanted: EventFilter
) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            if event is None:
                yield b": heartbeat\n\n"
            elif wanted.wants(event):
                yield sse_event(event)
    except (StoreUnavailable, Overflowed) as exc:  # mid-stream: the status line is long gone
        yield b"event: error\ndata: " + jsonable.dumps(stream_failed(exc)) + b"\n\n"


# -- WebSocket ---------------------------------------------------------------------------


@router.websocket(EVENTS_PATH)
async def events_socket(websocket: WebSocket, thread_id: UUID) -> None:
    """Commands in, responses and events out, one JSON object per text message. The
    first `subscription.subscribe` opens the thread (its `since` replays); a refusal to
    read the thread closes the socket with 4000 + the HTTP status."""
    await websocket.accept()
    session = _Socket(websocket, websocket.app.state.runtime, authorizer_of(websocket), thread_id)
    try:
        await session.serve()
    except WebSocketDisconnect:
        pass
    finally:
        await session.close()


class _Socket:
    def __init__(
        self, websocket: WebSocket, runtime: Runtime, authorize: Authorizer, thread_id: UUID
    ) -> None:
        self.websocket, self.runtime, self.authorize = websocket, runtime, authorize
        self.thread_id = thread_id
        self.filters: dict[str, EventFilter] = {}
        self.subscriptions = itertools.count(1)
        self.pump: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # one message at a time on the socket

    async def serve(self) -> None:
        while True:
            raw = await self.websocket.receive_text()
            try:
                payload = orjson.loads(raw)
                command = ProtocolCommand.model_validate(payload)
            except (orjson.JSONDecodeError, ValidationError):
                await self.send(
                    CommandFailed(
                        "invalid_argument",
                        "a command is a JSON object with an integer id and a string method",
                    ).response(None)
                )
                continue
            await self.send(await self.handle(command))
            if self.pump is not None and self.pump.done():
                return

    async def handle(self, command: ProtocolCommand) -> dict[str, Any]:
        try:
            if command.method == "subscription.subscribe":
                result = await self.subscribe(command.params)
            elif command.method == "subscription.unsubscribe":
                result = self.unsubscribe(command.params)
            else:
                result = await execute(self.runtime, self.authorize, self.thread_id, command)
        except CommandFailed as failed:
            return failed.response(command.id)
        except BrokerError as exc:  # what the HTTP route answers as {"detail"}
            code = CODES.get(exc.status_code, "invalid_argument")
            return CommandFailed(code, exc.detail, exc.status_code).response(command.id)
        return {"type": "success", "id": command.id, "result": result}

    async def subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            body = EventStreamRequest.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in ("params", *first["loc"]))
            raise CommandFailed("invalid_argument", f"{where}: {first['msg']}") from None
        subscription_id = str(next(self.subscriptions))
        self.filters[subscription_id] = EventFilter(
            body.channels, body.namespaces, body.depth, body.since
        )
        if self.pump is None:
            await self.open(body.since)
        return {"subscription_id": subscription_id}

    def unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.filters.pop(str(params.get("subscription_id")), None) is None:
            raise CommandFailed("no_such_subscription", "params.subscription_id: unknown", 404)
        return {}

    async def open(self, since: int | None) -> None:
        try:
            filter = await self.authorize("threads", "read", {"thread_id": self.thread_id})
            events = await open_thread(self.runtime, self.thread_id, since, filter)
        except BrokerError as exc:
            await self.websocket.close(code=4000 + exc.status_code, reason=exc.detail[:120])
            raise WebSocketDisconnect(4000 + exc.status_code) from None
        self.pump = asyncio.create_task(self._forward(events))

    async def _forward(self, events: AsyncIterator[dict[str, Any] | None]) -> None:
        try:
            async for event in events:
                if event is not None and any(f.wants(event) for f in self.filters.values()):
                    await self.send(event)
        except StoreUnavailable as exc:
            await self.send(stream_failed(exc))
            await self.websocket.close(code=1011, reason="store unavailable")
        except Overflowed as exc:  # this client read too slowly
            await self.send(stream_failed(exc))
            await self.websocket.close(code=1008, reason="client read too slowly")
        except Exception:
            log.exception("thread stream of %s failed", self.thread_id)
            raise

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.websocket.send_text(jsonable.dumps(message).decode())

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump


def stream_failed(exc: StoreUnavailable | Overflowed) -> dict[str, Any]:
    """The unsolicited error the SDK reads (`id: null`) before a stream's end."""
    return {"type": "error", "id": None, "error": "unknown_error", "message": str(exc)}
