"""langgraph.json's `http` section, applied to the app: which built-in route groups are
served, configurable headers, the custom app (api/custom.py) and CORS (api/cors.py).

A `disable_*` key removes its group (404). Groups the broker does not serve yet (mcp,
a2a, ui, webhooks) are disabled already, so those keys hold trivially.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI

from api import cors, custom, headers
from api.routes import assistants, meta, runs, store, threads
from broker.config import HttpConfig


def docs_urls(http: HttpConfig) -> dict[str, Any]:
    """FastAPI's keyword arguments: disable_meta also removes /openapi.json and /docs."""
    if http.disable_meta:
        return {"openapi_url": None, "docs_url": None, "redoc_url": None}
    return {}


def include_routes(app: FastAPI, http: HttpConfig) -> None:
    """The built-in routers the section leaves enabled."""
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
        app.include_router(runs.router, dependencies=[Depends(capture)])
    if not http.disable_store:
        app.include_router(store.router)


async def _ok() -> dict[str, bool]:
    """disable_meta's /ok: always ok, no checks (as LangGraph documents)."""
    return {"ok": True}


def install(app: FastAPI, http: HttpConfig, base: Path) -> None:
    """The custom app, then CORS outermost. Call it last in create_app: the custom app's
    middleware is placed relative to what is installed already (auth)."""
    custom.mount(app, http, base)
    cors.install(app, http.cors)
