"""Crons: runs on a schedule, stateless or on a thread (broker/crons.py fires them).

Custom auth: resource `crons`, actions create, read, update, delete and search (count
is a search), filters on the cron's metadata. A thread's cron also needs the thread to
be one the caller may read (`threads.read`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.auth.authorize import AuthorizeDep, Authorizer, stamped, user_of
from api.deps import RuntimeDep
from api.responses import JSON
from api.schemas import CronCount, CronCreate, CronPatch, CronSearch, ThreadCronCreate
from api.wire import cron_json, select
from broker.runtime import Runtime

router = APIRouter(tags=["crons"])


@router.post("/runs/crons")
async def create_cron(
    body: CronCreate, request: Request, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    return await _create(runtime, authorize, request, None, body)


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(
    thread_id: UUID,
    body: ThreadCronCreate,
    request: Request,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
) -> Response:
    return await _create(runtime, authorize, request, thread_id, body)


async def _create(
    runtime: Runtime,
    authorize: Authorizer,
    request: Request,
    thread_id: UUID | None,
    body: ThreadCronCreate,
) -> Response:
    spec = body.spec()
    user = user_of(request)
    value: dict[str, Any] = {
        "payload": spec.payload,
        "schedule": spec.schedule,
        "cron_id": None,
        "thread_id": thread_id,
        "user_id": user.identity if user else None,
        "end_time": spec.end_time,
        "metadata": dict(spec.metadata),
    }
    await authorize("crons", "create", value)
    metadata = stamped(value)  # the cron's, and each of its runs'
    spec = replace(spec, metadata=metadata, payload={**spec.payload, "metadata": metadata})
    thread_filter = None
    if thread_id is not None:
        thread_filter = await authorize("threads", "read", {"thread_id": thread_id})
    cron = await runtime.crons.create(thread_id, spec, user, thread_filter)
    return JSON(cron_json(cron))


def _search_value(body: CronCount) -> dict[str, Any]:
    return {"assistant_id": body.assistant_id, "thread_id": body.thread_id}


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    value = _search_value(body) | {"limit": body.limit, "offset": body.offset}
    filter = await authorize("crons", "search", value)
    crons = runtime.crons
    found = await crons.store.search(
        assistant_id=crons.assistant_key(body.assistant_id) if body.assistant_id else None,
        thread_id=body.thread_id,
        enabled=body.enabled,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
        filter=filter,
    )
    fields: list[str] | None = list(body.select) if body.select else None
    return JSON([select(cron_json(c), fields) for c in found])


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    filter = await authorize("crons", "search", _search_value(body))
    crons = runtime.crons
    count = await crons.store.count(
        assistant_id=crons.assistant_key(body.assistant_id) if body.assistant_id else None,
        thread_id=body.thread_id,
        metadata=body.metadata,
        filter=filter,
    )
    return JSON(count)


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    filter = await authorize("crons", "read", {"cron_id": cron_id})
    return JSON(cron_json(await runtime.crons.store.get(cron_id, filter)))


@router.patch("/runs/crons/{cron_id}")
async def patch_cron(
    cron_id: UUID, body: CronPatch, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    changes = body.changes()
    value: dict[str, Any] = {
        "cron_id": cron_id,
        "payload": changes.payload,
        "schedule": body.schedule,
        "metadata": dict(body.metadata or {}),
    }
    filter = await authorize("crons", "update", value)
    if body.metadata is not None or value["metadata"]:
        changes = replace(changes, metadata=stamped(value))
    return JSON(cron_json(await runtime.crons.patch(cron_id, changes, filter)))


@router.delete("/runs/crons/{cron_id}")
async def delete_cron(cron_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    filter = await authorize("crons", "delete", {"cron_id": cron_id})
    await runtime.crons.store.delete(cron_id, filter)
    return JSON({})
