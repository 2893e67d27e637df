"""Threads: create, read, search, delete, and their checkpointed state."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from starlette.responses import Response, StreamingResponse

from api.deps import RuntimeDep
from api.responses import JSON, with_total
from api.routes.runs import parse_modes
from api.schemas import (
    HistoryQuery,
    StateAt,
    StateUpdate,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
)
from api.sse import SSE_HEADERS, THREAD_MODES, Follow, History, RunEnded, ThreadRelay
from api.wire import select, thread_json
from broker.errors import Invalid, NotFound
from broker.events import Subscription, event_id_key
from broker.ids import uuid7
from broker.runtime import Runtime
from broker.threads import NewThread

router = APIRouter(prefix="/threads", tags=["threads"])

Modes = Annotated[list[str], Query()]


@router.post("")
async def create_thread(body: ThreadCreate, runtime: RuntimeDep) -> Response:
    new = NewThread(
        body.thread_id or uuid7(),
        body.metadata,
        body.if_exists,
        body.ttl.to_request() if body.ttl else None,
        body.steps(),
    )
    return JSON(thread_json(await runtime.service.thread_policy.create(new)))


@router.post("/prune")
async def prune_threads(body: ThreadPrune, runtime: RuntimeDep) -> Response:
    pruned = await runtime.service.thread_policy.prune(body.thread_ids, body.strategy)
    return JSON({"pruned_count": pruned})


@router.post("/search")
async def search_threads(body: ThreadSearch, runtime: RuntimeDep) -> Response:
    found, total = await runtime.threads.search(
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        ids=body.ids,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    items = [select(thread_json(t), body.select) for t in found]
    return with_total(items, total, body.offset, len(items))


@router.post("/count")
async def count_threads(body: ThreadCount, runtime: RuntimeDep) -> Response:
    count = await runtime.threads.count(
        metadata=body.metadata, values=body.values, status=body.status
    )
    return JSON(count)


@router.patch("/{thread_id}")
async def patch_thread(
    thread_id: UUID,
    body: ThreadPatch,
    runtime: RuntimeDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    ttl = body.ttl.to_request() if body.ttl else None
    thread = await runtime.service.thread_policy.patch(thread_id, body.metadata, ttl)
    if prefer and "return=minimal" in prefer:
        return Response(status_code=204)
    return JSON(thread_json(thread))


@router.post("/{thread_id}/copy")
async def copy_thread(thread_id: UUID, runtime: RuntimeDep) -> Response:
    return JSON(thread_json(await runtime.service.thread_policy.copy(thread_id)))


@router.post("/{thread_id}/state")
async def update_state(thread_id: UUID, body: StateUpdate, runtime: RuntimeDep) -> Response:
    checkpoint = await runtime.service.thread_policy.update_state(
        thread_id, body.values, as_node=body.as_node, checkpoint=body.target()
    )
    # `configurable` and `checkpoint_id` are deprecated but still read by older clients.
    return JSON(
        {
            "checkpoint": checkpoint,
            "configurable": checkpoint,
            "checkpoint_id": checkpoint.get("checkpoint_id"),
        }
    )


@router.post("/{thread_id}/state/checkpoint")
async def get_state_at_checkpoint(thread_id: UUID, body: StateAt, runtime: RuntimeDep) -> Response:
    thread = await runtime.threads.get(thread_id)
    return JSON(await runtime.state.get(thread, body.checkpoint, subgraphs=body.subgraphs))


@router.get("/{thread_id}")
async def get_thread(thread_id: UUID, runtime: RuntimeDep, include: str = "") -> Response:
    """`include`: comma-separated extra fields; "ttl" is the one there is."""
    fields = {f.strip() for f in include.split(",") if f.strip()}
    if fields - {"ttl"}:
        raise Invalid(f"include: unknown field(s) {sorted(fields - {'ttl'})}; supported: ttl")
    thread = await runtime.threads.get(thread_id)
    return JSON(thread_json(thread, include_ttl="ttl" in fields))


@router.get("/{thread_id}/stream")
async def join_thread_stream(
    thread_id: UUID,
    runtime: RuntimeDep,
    stream_mode: Modes = [],  # noqa: B006 (FastAPI copies query defaults); the SDK's name
    stream_modes: Modes = [],  # noqa: B006 (the spec's name)
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Every run on the thread as it executes, until the client disconnects."""
    if last_event_id:
        event_id_key(last_event_id)  # a malformed id is the client's 400, before anything else
    modes = _thread_modes(stream_mode + stream_modes)
    subscription, active = await runtime.service.thread_policy.join(thread_id)
    relay = ThreadRelay(
        subscription,
        active,
        _follower(runtime),
        _ended(runtime),
        runtime.settings.sse_heartbeat_seconds,
        modes,
        history=_logged(runtime, thread_id, last_event_id) if last_event_id else None,
    )
    return StreamingResponse(relay.frames(), media_type="text/event-stream", headers=SSE_HEADERS)


def _thread_modes(values: list[str]) -> set[str]:
    """stream_mode(s) as one value, repeated keys or a JSON array; run_modes by default."""
    return parse_modes(values, THREAD_MODES) or {"run_modes"}


def _logged(runtime: Runtime, thread_id: UUID, last_event_id: str) -> History:
    async def history() -> list[tuple[UUID, str, bytes]]:
        return await runtime.service.thread_history(thread_id, last_event_id)

    return history


def _follower(runtime: Runtime) -> Follow:
    async def follow(run_id: UUID) -> Subscription:
        return await runtime.service.bus.subscribe(runtime.service.keys.run_channel(run_id))

    return follow


def _ended(runtime: Runtime) -> RunEnded:
    async def ended(run_id: UUID) -> str | None:
        try:
            run = await runtime.runs.get(run_id)
        except NotFound:  # deleted with its thread, or a stateless run's
            return "interrupted"
        return None if run.status.active else run.status.value

    return ended


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: UUID, runtime: RuntimeDep) -> Response:
    await runtime.service.delete_thread(thread_id)
    return Response(status_code=204)


@router.get("/{thread_id}/state")
async def get_state(thread_id: UUID, runtime: RuntimeDep, subgraphs: bool = False) -> Response:
    thread = await runtime.threads.get(thread_id)
    return JSON(await runtime.state.get(thread, subgraphs=subgraphs))


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: UUID, checkpoint_id: UUID, runtime: RuntimeDep, subgraphs: bool = False
) -> Response:
    thread = await runtime.threads.get(thread_id)
    checkpoint = {"checkpoint_id": str(checkpoint_id)}
    return JSON(await runtime.state.get(thread, checkpoint, subgraphs=subgraphs))


@router.post("/{thread_id}/history")
async def post_history(thread_id: UUID, body: HistoryQuery, runtime: RuntimeDep) -> Response:
    return await _history(runtime, thread_id, body)


@router.get("/{thread_id}/history")
async def get_history(
    thread_id: UUID,
    runtime: RuntimeDep,
    limit: int = Query(default=10, ge=1, le=1000),
    before: str | None = None,
) -> Response:
    return await _history(runtime, thread_id, HistoryQuery(limit=limit, before=before or None))


async def _history(runtime: RuntimeDep, thread_id: UUID, body: HistoryQuery) -> Response:
    thread = await runtime.threads.get(thread_id)
    before: dict[str, Any] | None = (
        {"checkpoint_id": body.before} if isinstance(body.before, str) else body.before
    )
    states = await runtime.state.history(
        thread, limit=body.limit, before=before, metadata=body.metadata, checkpoint=body.checkpoint
    )
    return JSON(states)
