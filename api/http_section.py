"""langgraph.json's `http` section, applied to the app: which built-in route groups are
served, configurable headers, the custom app (api/custom.py) and CORS (api/cors.py).

A `disable_*` key removes its group (404). Groups the broker does not serve yet (ui)
are disabled already, so that key holds trivially; `disable_webhooks` is the
runtime's (broker/runtime.py: no deliveries are written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI

from api import a2a, cors, custom, headers, mcp
from api.routes import assistants, crons, meta, protocol, runs, store, threads
from broker.config import HttpConfig


def docs_urls(http: HttpConfig) -> dict[str, Any]:
    """FastAPI's keyword arguments: disable_meta also removes /openapi.json and /docs."""
    if http.disable_meta:
        return {"openapi_url": None, "docs_url": None, "redoc_url": None}
    return {}


def include_routes(app: FastAPI, http: HttpConfig) -> list[mcp.Running]:
    """The built-in routers the section leaves enabled; returns what of them the app's
    lifespan must run (MCP's transport)."""
    if http.disable_meta:
        app.add_api_route("/ok", _ok, include_in_schema=False)
    else:
        app.include_router(meta.router)
    if not http.disable_assistants:
        app.include_router(assistants.router)
    if not http.disable_threads:
        app.include_router(threads.router)
    if not http.disable_runs:
        capture = headers.capture(http.configurable_headers)
        app.include_router(crons.router)  # before runs: /runs/crons is not a run id
        app.include_router(runs.router, dependencies=[Depends(capture)])
        if not http.disable_threads:  # thread streaming starts runs too
            app.include_router(protocol.router, dependencies=[Depends(capture)])
    if not http.disable_store:
        app.include_router(store.router)
    if not http.disable_a2a:
        app.include_router(a2a.router)
    return [] if http.disable_mcp else [mcp.install(app)]


async def _ok() -> dict[str, bool]:
    """disable_meta's /ok: always ok, no checks (as LangGraph documents)."""
    return {"ok": True}


def install(app: FastAPI, http: HttpConfig, base: Path) -> None:
    """The custom app, then CORS outermost. Call it last in create_app: the custom app's
    middleware is placed relative to what is installed already (auth)."""
    custom.mount(app, http, base)
    cors.install(app, http.cors)
