"""Health and server info."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from api.deps import RuntimeDep

router = APIRouter(tags=["meta"])


@router.get("/ok")
async def ok(runtime: RuntimeDep, check_db: int = 0) -> dict[str, bool]:
    if check_db:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    return {"ok": True}


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
