"""Threads: create, read, search, delete, and their checkpointed state."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from api.deps import RuntimeDep
from api.responses import JSON, with_total
from api.schemas import (
    HistoryQuery,
    StateAt,
    StateUpdate,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
)
from api.wire import select, thread_json
from broker.ids import uuid7

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("")
async def create_thread(body: ThreadCreate, runtime: RuntimeDep) -> Response:
    thread = await runtime.service.create_thread(
        body.thread_id or uuid7(), body.metadata, if_exists=body.if_exists
    )
    return JSON(thread_json(thread))


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
    thread = await runtime.service.patch_thread(thread_id, body.metadata)
    if prefer and "return=minimal" in prefer:
        return Response(status_code=204)
    return JSON(thread_json(thread))


@router.post("/{thread_id}/copy")
async def copy_thread(thread_id: UUID, runtime: RuntimeDep) -> Response:
    return JSON(thread_json(await runtime.service.copy_thread(thread_id)))


@router.post("/{thread_id}/state")
async def update_state(thread_id: UUID, body: StateUpdate, runtime: RuntimeDep) -> Response:
    checkpoint = await runtime.service.update_state(
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
async def get_thread(thread_id: UUID, runtime: RuntimeDep) -> Response:
    return JSON(thread_json(await runtime.threads.get(thread_id)))


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
