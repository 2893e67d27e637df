"""create_app(settings): the FastAPI application and its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import auth, errors
from api.routes import assistants, meta, runs, threads
from broker.graphs import GraphRegistry
from broker.runtime import Runtime, load_graphs, open_runtime
from broker.settings import Settings

RuntimeFactory = Callable[[Settings, GraphRegistry], Awaitable[Runtime]]
# Work that shares the app's runtime and lifetime (the embedded worker of `broker dev`).
Companion = Callable[[Runtime], Awaitable[None]]


def create_app(
    settings: Settings,
    graphs: GraphRegistry | None = None,
    *,
    runtime: RuntimeFactory = open_runtime,
    companions: Sequence[Companion] = (),
) -> FastAPI:
    registry = graphs or load_graphs(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = opened = await runtime(settings, registry)
        tasks: list[asyncio.Future[None]] = [asyncio.ensure_future(w(opened)) for w in companions]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await opened.close()

    app = FastAPI(title="LangGraph broker", lifespan=lifespan)
    errors.install(app)
    auth.install(app, settings)
    for module in (meta, assistants, threads, runs):
        app.include_router(module.router)
    return app
