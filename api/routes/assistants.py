"""Assistants: versioned configurations of a graph (system ones come from langgraph.json),
and what their graph looks like (drawing, schemas, subgraphs)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from api.auth.authorize import AuthorizeDep, Authorizer, stamped
from api.deps import RuntimeDep
from api.responses import JSON, with_total
from api.schemas import (
    AssistantCreate,
    AssistantFilter,
    AssistantPatch,
    AssistantSearch,
    AssistantVersionChange,
    AssistantVersions,
)
from api.wire import assistant_json, assistant_version_json, select
from broker import introspection
from broker.errors import Invalid
from broker.storage.visibility import Filter

router = APIRouter(prefix="/assistants", tags=["assistants"])


@router.post("")
async def create_assistant(
    body: AssistantCreate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    value = body.model_dump(exclude={"description"}) | {"metadata": dict(body.metadata)}
    filter = await authorize("assistants", "create", value)
    spec = replace(body.spec(), metadata=stamped(value))
    assistant = await runtime.service.create_assistant(
        body.assistant_id, spec, if_exists=body.if_exists, filter=filter
    )
    return JSON(assistant_json(assistant))


@router.post("/search")
async def search_assistants(
    body: AssistantSearch, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    value = {"graph_id": body.graph_id, "metadata": body.metadata}
    filter = await authorize(
        "assistants", "search", value | {"limit": body.limit, "offset": body.offset}
    )
    found, total = await runtime.assistants.search(
        metadata=body.metadata,
        graph_id=body.graph_id,
        name=body.name,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
        filter=filter,
    )
    fields: list[str] | None = list(body.select) if body.select else None
    items: list[dict[str, Any]] = [select(assistant_json(a), fields) for a in found]
    return with_total(items, total, body.offset, len(items))


@router.post("/count")
async def count_assistants(
    body: AssistantFilter, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    value = {"graph_id": body.graph_id, "metadata": body.metadata}
    filter = await authorize("assistants", "search", value)
    count = await runtime.assistants.count(
        metadata=body.metadata, graph_id=body.graph_id, name=body.name, filter=filter
    )
    return JSON(count)


@router.get("/{assistant_id}")
async def get_assistant(
    assistant_id: str, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    filter = await _reading(authorize, assistant_id)
    assistant = await runtime.service.resolve_assistant(assistant_id, filter)
    return JSON(assistant_json(assistant))


@router.patch("/{assistant_id}")
async def patch_assistant(
    assistant_id: str, body: AssistantPatch, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    changes = body.changes()
    value = {"assistant_id": assistant_id, **changes, "metadata": dict(body.metadata or {})}
    filter = await authorize("assistants", "update", value)
    metadata = stamped(value) if body.metadata is not None or value["metadata"] else None
    assistant = await runtime.service.patch_assistant(assistant_id, changes, metadata, filter)
    return JSON(assistant_json(assistant))


@router.delete("/{assistant_id}")
async def delete_assistant(
    assistant_id: str, runtime: RuntimeDep, authorize: AuthorizeDep, delete_threads: bool = False
) -> Response:
    filter = await authorize("assistants", "delete", {"assistant_id": assistant_id})
    # Its threads go too only as far as the caller may delete them.
    threads = await authorize("threads", "delete", {"thread_id": None}) if delete_threads else None
    await runtime.service.delete_assistant(
        assistant_id, delete_threads=delete_threads, filter=filter, thread_filter=threads
    )
    return JSON({})


@router.post("/{assistant_id}/versions")
async def assistant_versions(
    assistant_id: str, body: AssistantVersions, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    value = {"assistant_id": assistant_id, "metadata": body.metadata}
    filter = await authorize("assistants", "search", value)
    assistant = await runtime.service.resolve_assistant(assistant_id, filter)
    versions = await runtime.assistants.versions(
        assistant.assistant_id,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
        filter=filter,
    )
    return JSON([assistant_version_json(v) for v in versions])


@router.post("/{assistant_id}/latest")
async def set_latest_version(
    assistant_id: str,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    body: AssistantVersionChange | None = None,
    version: int | None = None,
) -> Response:
    # The SDK sends the version in the body; the OpenAPI spec names a query parameter.
    chosen = body.version if body is not None and body.version is not None else version
    if chosen is None:
        raise Invalid('version: give the version to make current, as {"version": n}')
    value = {"assistant_id": assistant_id, "version": chosen}
    filter = await authorize("assistants", "update", value)
    assistant = await runtime.service.set_latest_assistant(assistant_id, chosen, filter)
    return JSON(assistant_json(assistant))


@router.get("/{assistant_id}/graph")
async def assistant_graph(
    assistant_id: str, runtime: RuntimeDep, authorize: AuthorizeDep, xray: str = Query("false")
) -> Response:
    depth = _xray(xray)
    filter = await _reading(authorize, assistant_id)
    assistant, graph = await runtime.service.assistant_graph(assistant_id, filter)
    return JSON(await introspection.drawing(graph, assistant.config, depth))


@router.get("/{assistant_id}/schemas")
async def assistant_schemas(
    assistant_id: str, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    filter = await _reading(authorize, assistant_id)
    assistant, graph = await runtime.service.assistant_graph(assistant_id, filter)
    schemas = introspection.schemas(graph, assistant.config)
    return JSON({"graph_id": assistant.graph_id, **schemas})


@router.get("/{assistant_id}/subgraphs")
async def assistant_subgraphs(
    assistant_id: str, runtime: RuntimeDep, authorize: AuthorizeDep, recurse: bool = False
) -> Response:
    filter = await _reading(authorize, assistant_id)
    return await _subgraphs(assistant_id, None, recurse, runtime, filter)


@router.get("/{assistant_id}/subgraphs/{namespace}")
async def assistant_subgraphs_under(
    assistant_id: str,
    namespace: str,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    recurse: bool = False,
) -> Response:
    filter = await _reading(authorize, assistant_id)
    return await _subgraphs(assistant_id, namespace, recurse, runtime, filter)


async def _reading(authorize: Authorizer, assistant_id: str) -> Filter | None:
    return await authorize("assistants", "read", {"assistant_id": assistant_id})


async def _subgraphs(
    assistant_id: str,
    namespace: str | None,
    recurse: bool,
    runtime: RuntimeDep,
    filter: Filter | None,
) -> Response:
    assistant, graph = await runtime.service.assistant_graph(assistant_id, filter)
    config = assistant.config
    return JSON(await introspection.subgraphs(graph, config, namespace, recurse))


def _xray(value: str) -> int | bool:
    """`xray` is a boolean or a depth: true/false, or a non-negative integer."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered.isdigit():
        return int(lowered)
    raise Invalid(f"xray: expected true, false or a depth (an integer), got '{value}'")
