"""The custom app of tests/custom/langgraph.json (`http.app`): a route of its own, two
that shadow built-in ones for one method, middleware, and a lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

started: list[str] = []


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    started.append("yes")
    yield


app = FastAPI(lifespan=lifespan)


@app.middleware("http")
async def mark(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers["x-custom"] = "from-webapp"
    return response


@app.get("/hello")
async def hello() -> dict[str, object]:
    return {"hello": "world", "lifespan_ran": bool(started)}


@app.get("/info")
async def info() -> dict[str, str]:
    return {"served_by": "webapp"}  # shadows the broker's GET /info


@app.get("/runs/batch")
async def batch_page() -> dict[str, str]:
    return {"served_by": "webapp"}  # GET only: POST /runs/batch stays the broker's
