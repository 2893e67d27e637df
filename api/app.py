"""create_app(settings): the FastAPI application and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI

from api import auth, errors, http_section, openapi
from api.limits import InputLimits, checked_params
from broker.config import HttpConfig, ProjectConfig
from broker.graphs import GraphRegistry
from broker.runtime import Runtime, load_graphs, open_runtime, read_project
from broker.settings import Settings

RuntimeFactory = Callable[[Settings, GraphRegistry], Awaitable[Runtime]]
# Work that shares the app's runtime and lifetime (the embedded worker of `broker dev`).
Companion = Callable[[Runtime], Awaitable[None]]


def create_app(
    settings: Settings,
    graphs: GraphRegistry | None = None,
    *,
    project: ProjectConfig | None = None,
    runtime: RuntimeFactory = open_runtime,
    companions: Sequence[Companion] = (),
) -> FastAPI:
    if project is None and settings.config is not None:
        project = read_project(settings)  # its http section too, never only its graphs
    registry = graphs or load_graphs(settings)
    http = project.http if project else HttpConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = opened = await runtime(settings, registry)
        tasks: list[asyncio.Future[None]] = [asyncio.ensure_future(w(opened)) for w in companions]
        try:
            async with contextlib.AsyncExitStack() as stack:
                for serve in serving:
                    await stack.enter_async_context(serve())
                yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await opened.close()

    app = FastAPI(
        title="LangGraph broker",
        lifespan=lifespan,
        dependencies=[Depends(checked_params)],
        **http_section.docs_urls(http),
    )
    app.add_middleware(InputLimits, max_body_bytes=settings.max_body_bytes)
    errors.install(app)
    openapi.install(app)  # describes what is served, custom routes included
    auth.install(app, project)  # after openapi: it adds the security scheme to it
    serving = http_section.include_routes(app, http)
    # Last: langgraph.json's http section places the custom app's middleware around
    # what is installed above, and CORS outermost (a preflight needs no credentials).
    http_section.install(app, http, project.base if project else Path.cwd())
    return app
