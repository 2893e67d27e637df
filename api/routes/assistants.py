"""Assistants: read and search (system assistants are made from langgraph.json)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from api.deps import RuntimeDep
from api.responses import JSON, with_total
from api.schemas import AssistantSearch
from api.wire import assistant_json, select

router = APIRouter(prefix="/assistants", tags=["assistants"])


@router.get("/{assistant_id}")
async def get_assistant(assistant_id: str, runtime: RuntimeDep) -> Response:
    assistant = await runtime.service.resolve_assistant(assistant_id)
    return JSON(assistant_json(assistant))


@router.post("/search")
async def search_assistants(body: AssistantSearch, runtime: RuntimeDep) -> Response:
    found, total = await runtime.assistants.search(
        metadata=body.metadata,
        graph_id=body.graph_id,
        name=body.name,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    items: list[dict[str, Any]] = [select(assistant_json(a), body.select) for a in found]
    return with_total(items, total, body.offset, len(items))
