"""Threads: create, read, search, delete, and their checkpointed state."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from starlette.responses import Response, StreamingResponse

from api.auth.authorize import AuthorizeDep, Authorizer, stamped
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
from api.sse import (
    SSE_HEADERS,
    THREAD_MODES,
    History,
    ThreadRelay,
    follower,
    run_ended,
    told_overflow,
)
from api.wire import select, thread_json
from broker.errors import Invalid
from broker.events import event_id_key
from broker.ids import uuid7
from broker.models import Thread
from broker.runtime import Runtime
from broker.threads import NewThread

router = APIRouter(prefix="/threads", tags=["threads"])

Modes = Annotated[list[str], Query()]


@router.post("")
async def create_thread(
    body: ThreadCreate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    thread_id = body.thread_id or uuid7()
    value: dict[str, Any] = {
        "thread_id": thread_id,
        "metadata": dict(body.metadata),
        "if_exists": body.if_exists,
        **({"ttl": body.ttl.model_dump()} if body.ttl else {}),
    }
    filter = await authorize("threads", "create", value)
    new = NewThread(
        thread_id,
        stamped(value),
        body.if_exists,
        body.ttl.to_request() if body.ttl else None,
        body.steps(),
    )
    return JSON(thread_json(await runtime.service.thread_policy.create(new, filter)))


@router.post("/prune")
async def prune_threads(
    body: ThreadPrune, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    filter = await authorize("threads", "delete", {"thread_ids": list(body.thread_ids)})
    pruned = await runtime.service.thread_policy.prune(body.thread_ids, body.strategy, filter)
    return JSON({"pruned_count": pruned})


def _search_value(body: ThreadSearch | ThreadCount) -> dict[str, Any]:
    return {"metadata": body.metadata, "values": body.values, "status": body.status}


@router.post("/search")
async def search_threads(
    body: ThreadSearch, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    value = _search_value(body) | {"limit": body.limit, "offset": body.offset, "ids": body.ids}
    filter = await authorize("threads", "search", value)
    found, total = await runtime.threads.search(
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        ids=body.ids,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
        filter=filter,
    )
    items = [select(thread_json(t), body.select) for t in found]
    return with_total(items, total, body.offset, len(items))


@router.post("/count")
async def count_threads(
    body: ThreadCount, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    filter = await authorize("threads", "search", _search_value(body))
    count = await runtime.threads.count(
        metadata=body.metadata, values=body.values, status=body.status, filter=filter
    )
    return JSON(count)


@router.patch("/{thread_id}")
async def patch_thread(
    thread_id: UUID,
    body: ThreadPatch,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    ttl = body.ttl.to_request() if body.ttl else None
    value: dict[str, Any] = {"thread_id": thread_id, "metadata": dict(body.metadata)}
    filter = await authorize("threads", "update", value)
    policy = runtime.service.thread_policy
    thread = await policy.patch(thread_id, stamped(value), ttl, filter)
    if prefer and "return=minimal" in prefer:
        return Response(status_code=204)
    return JSON(thread_json(thread))


@router.post("/{thread_id}/copy")
async def copy_thread(thread_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    """Reading the source, then creating the copy: both are authorized."""
    policy = runtime.service.thread_policy
    read = await authorize("threads", "read", {"thread_id": thread_id})
    source = await policy.source(thread_id, read)
    copy_id = uuid7()
    value: dict[str, Any] = {"thread_id": copy_id, "metadata": dict(source.metadata)}
    await authorize("threads", "create", value)
    changed = {k: v for k, v in stamped(value).items() if source.metadata.get(k) != v}
    return JSON(thread_json(await policy.copy(source, copy_id, changed, read)))


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: UUID, body: StateUpdate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    filter = await authorize("threads", "update", {"thread_id": thread_id})
    checkpoint = await runtime.service.thread_policy.update_state(
        thread_id, body.values, as_node=body.as_node, checkpoint=body.target(), filter=filter
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
async def get_state_at_checkpoint(
    thread_id: UUID, body: StateAt, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    thread = await _readable(runtime, authorize, thread_id)
    return JSON(await runtime.state.get(thread, body.checkpoint, subgraphs=body.subgraphs))


@router.get("/{thread_id}")
async def get_thread(
    thread_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep, include: str = ""
) -> Response:
    """`include`: comma-separated extra fields; "ttl" is the one there is."""
    fields = {f.strip() for f in include.split(",") if f.strip()}
    if fields - {"ttl"}:
        raise Invalid(f"include: unknown field(s) {sorted(fields - {'ttl'})}; supported: ttl")
    thread = await _readable(runtime, authorize, thread_id)
    return JSON(thread_json(thread, include_ttl="ttl" in fields))


async def _readable(runtime: Runtime, authorize: Authorizer, thread_id: UUID) -> Thread:
    """The thread, read with the filter `threads.read` gives (hidden: 404)."""
    filter = await authorize("threads", "read", {"thread_id": thread_id})
    return await runtime.threads.get(thread_id, filter=filter)


@router.get("/{thread_id}/stream")
async def join_thread_stream(
    thread_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    stream_mode: Modes = [],  # noqa: B006 (FastAPI copies query defaults); the SDK's name
    stream_modes: Modes = [],  # noqa: B006 (the spec's name)
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Every run on the thread as it executes, until the client disconnects."""
    if last_event_id:
        event_id_key(last_event_id)  # a malformed id is the client's 400, before anything else
    modes = _thread_modes(stream_mode + stream_modes)
    filter = await authorize("threads", "read", {"thread_id": thread_id})
    subscription, active = await runtime.service.thread_policy.join(thread_id, filter)
    relay = ThreadRelay(
        subscription,
        active,
        follower(runtime),
        run_ended(runtime),
        runtime.settings.sse_heartbeat_seconds,
        modes,
        history=_logged(runtime, thread_id, last_event_id) if last_event_id else None,
        buffer_bytes=runtime.settings.stream_buffer_bytes,
    )
    return StreamingResponse(
        told_overflow(relay.frames()), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _thread_modes(values: list[str]) -> set[str]:
    """stream_mode(s) as one value, repeated keys or a JSON array; run_modes by default."""
    return parse_modes(values, THREAD_MODES) or {"run_modes"}


def _logged(runtime: Runtime, thread_id: UUID, last_event_id: str) -> History:
    async def history() -> list[tuple[UUID, str, bytes]]:
        return await runtime.service.thread_history(thread_id, last_event_id)

    return history


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    filter = await authorize("threads", "delete", {"thread_id": thread_id})
    await runtime.service.delete_thread(thread_id, filter)
    return Response(status_code=204)


@router.get("/{thread_id}/state")
async def get_state(
    thread_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep, subgraphs: bool = False
) -> Response:
    thread = await _readable(runtime, authorize, thread_id)
    return JSON(await runtime.state.get(thread, subgraphs=subgraphs))


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: UUID,
    checkpoint_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    subgraphs: bool = False,
) -> Response:
    thread = await _readable(runtime, authorize, thread_id)
    checkpoint = {"checkpoint_id": str(checkpoint_id)}
    return JSON(await runtime.state.get(thread, checkpoint, subgraphs=subgraphs))


@router.post("/{thread_id}/history")
async def post_history(
    thread_id: UUID, body: HistoryQuery, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    return await _history(runtime, await _readable(runtime, authorize, thread_id), body)


@router.get("/{thread_id}/history")
async def get_history(
    thread_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    limit: int = Query(default=10, ge=1, le=1000),
    before: str | None = None,
) -> Response:
    thread = await _readable(runtime, authorize, thread_id)
    return await _history(runtime, thread, HistoryQuery(limit=limit, before=before or None))


async def _history(runtime: RuntimeDep, thread: Thread, body: HistoryQuery) -> Response:
    before: dict[str, Any] | None = (
        {"checkpoint_id": body.before} if isinstance(body.before, str) else body.before
    )
    states = await runtime.state.history(
        thread, limit=body.limit, before=before, metadata=body.metadata, checkpoint=body.checkpoint
    )
    return JSON(states)
