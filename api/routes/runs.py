"""Runs: create (background, stream, wait) on a thread or stateless, and read them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query
from starlette.responses import Response

from api.deps import RuntimeDep
from api.responses import JSON
from api.schemas import RunCreate
from api.sse import Poll, final_output, relay, run_urls, sse_response, wait_response
from api.wire import run_json
from broker.errors import NotFound
from broker.models import Run
from broker.runtime import Runtime

router = APIRouter(tags=["runs"])


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(thread_id: UUID, body: RunCreate, runtime: RuntimeDep) -> Response:
    return await _stream(runtime, thread_id, body)


@router.post("/runs/stream")
async def stream_stateless(body: RunCreate, runtime: RuntimeDep) -> Response:
    return await _stream(runtime, None, body)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(thread_id: UUID, body: RunCreate, runtime: RuntimeDep) -> Response:
    return await _wait(runtime, thread_id, body)


@router.post("/runs/wait")
async def wait_stateless(body: RunCreate, runtime: RuntimeDep) -> Response:
    return await _wait(runtime, None, body)


@router.post("/threads/{thread_id}/runs")
async def create_run(thread_id: UUID, body: RunCreate, runtime: RuntimeDep) -> Response:
    return await _create(runtime, thread_id, body)


@router.post("/runs")
async def create_stateless(body: RunCreate, runtime: RuntimeDep) -> Response:
    return await _create(runtime, None, body)


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: UUID,
    runtime: RuntimeDep,
    limit: int = Query(default=10, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
    status: str | None = None,
) -> Response:
    await runtime.service.threads.get(thread_id)
    found = await runtime.service.runs.list(
        thread_id, limit=limit, offset=offset, status=status or None
    )
    return JSON([run_json(r) for r in found])


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(thread_id: UUID, run_id: UUID, runtime: RuntimeDep) -> Response:
    await runtime.service.threads.get(thread_id)
    return JSON(run_json(await runtime.service.runs.get(run_id, thread_id)))


async def _create(runtime: Runtime, thread_id: UUID | None, body: RunCreate) -> Response:
    submission = await runtime.service.submit(thread_id, body.to_request(), subscribe=False)
    content_location, _ = run_urls(submission.run, stateless=thread_id is None)
    return JSON(run_json(submission.run), headers={"Content-Location": content_location})


async def _stream(runtime: Runtime, thread_id: UUID | None, body: RunCreate) -> Response:
    submission = await runtime.service.submit(thread_id, body.to_request(), subscribe=True)
    assert submission.subscription is not None
    poll = _poller(runtime, submission.run)
    frames = relay(submission.subscription, runtime.settings.sse_heartbeat_seconds, poll)
    return sse_response(frames, submission.run, stateless=thread_id is None)


async def _wait(runtime: Runtime, thread_id: UUID | None, body: RunCreate) -> Response:
    submission = await runtime.service.submit(thread_id, body.to_request(), subscribe=True)
    assert submission.subscription is not None
    poll = _poller(runtime, submission.run)
    output = final_output(submission.subscription, runtime.settings.sse_heartbeat_seconds, poll)
    return wait_response(output, submission.run, stateless=thread_id is None)


def _poller(runtime: Runtime, run: Run) -> Poll:
    """Checks, on silence, whether the run ended without our seeing its end marker."""

    async def poll() -> dict[str, Any] | None:
        try:
            current = await runtime.service.runs.get(run.run_id)
            if current.status.active:
                return None
            thread = await runtime.service.threads.get(run.thread_id)
        except NotFound:  # a stateless run's thread is deleted when it ends
            return {}
        return dict(thread.values or {})

    return poll
