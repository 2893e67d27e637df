"""create_app(settings): the FastAPI application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors
from api.routes import assistants, meta, runs, threads
from broker.graphs import GraphRegistry
from broker.runtime import load_graphs, open_runtime
from broker.settings import Settings


def create_app(settings: Settings, graphs: GraphRegistry | None = None) -> FastAPI:
    registry = graphs or load_graphs(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await open_runtime(settings, registry)
        try:
            yield
        finally:
            await app.state.runtime.close()

    app = FastAPI(title="LangGraph broker", lifespan=lifespan)
    errors.install(app)
    for module in (meta, assistants, threads, runs):
        app.include_router(module.router)
    return app
