"""Health and server info."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from importlib.metadata import version
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import RuntimeDep
from api.responses import JSON
from broker import scrape
from broker.errors import Store, StoreUnavailable
from broker.storage import health

router = APIRouter(tags=["meta"])


# A check that has not answered by then counts as an outage (a blackholed host).
_CHECK_SECONDS = 2.0


@router.get("/ok")
async def ok(
    runtime: RuntimeDep,
    check_db: int = Query(
        0,
        ge=0,
        le=1,
        description="1: also check Postgres and Redis (a round trip each); 503 if down",
    ),
    check_redis: int = Query(0, ge=0, le=1, description="1: also check Redis; 503 if down"),
) -> dict[str, bool]:
    """Liveness by default (no I/O); readiness with check_db=1 (every store) or check_redis=1."""
    if check_db:
        await _within(health.ping(runtime.engine), "Postgres")
    if check_db or check_redis:
        await _within(runtime.service.messaging.queue.size(), "Redis")
    return {"ok": True}


async def _within(check: Awaitable[object], store: Store) -> None:
    try:
        await asyncio.wait_for(check, _CHECK_SECONDS)
    except TimeoutError as exc:
        raise StoreUnavailable(store, exc) from exc


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text format (default), or the same figures as JSON",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def metrics(
    runtime: RuntimeDep,
    format: Literal["prometheus", "json"] = Query(
        "prometheus", description="prometheus (text format) or json"
    ),
) -> Response:
    """Runs, queue, workers and stores now (names: docs/production.md)."""
    found = await scrape.families(runtime.engine, runtime.service.messaging.board)
    if format == "json":
        return JSON(scrape.as_json(found))
    return Response(scrape.exposition(found), media_type=CONTENT_TYPE_LATEST)


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    return {
        "version": version("langgraph-broker"),
        "langgraph_py_version": version("langgraph"),
        "flags": {
            "assistants": True,
            "custom_auth": getattr(request.app.state, "auth", None) is not None,
            "crons": True,
            "langsmith": False,
            "langsmith_tracing_replicas": False,
            "langsmith_tracing_session_on_runs": False,
        },
        "host": {
            "kind": "self-hosted",
            "project_id": None,
            "host_revision_id": None,
            "revision_id": None,
            "tenant_id": None,
        },
    }
