"""Runs: create (background, stream, wait) on a thread or stateless; join, cancel, read."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from api.auth.authorize import AuthorizeDep, Authorizer, authorize_run
from api.deps import RuntimeDep
from api.responses import JSON
from api.schemas import MAX_OFFSET, STREAM_MODES, BulkCancel, RunCreate, check_modes
from api.sse import (
    OnDisconnect,
    Poll,
    Relay,
    final_output,
    json_stream_response,
    poller,
    resumer,
    run_location,
    sse_response,
)
from api.wire import run_json
from broker.errors import Invalid, NotFound
from broker.events import Subscription, event_id_key
from broker.models import CancelAction, Run
from broker.runtime import Runtime
from broker.service import Submission
from broker.storage.visibility import Filter

router = APIRouter(tags=["runs"])

StreamModes = Annotated[list[str], Query()]
Action = Annotated[CancelAction, Query()]


# -- create ---------------------------------------------------------------------------


@router.post("/threads/{thread_id}/runs/stream")
async def stream_run(
    thread_id: UUID, body: RunCreate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    return await _stream(runtime, authorize, thread_id, body)


@router.post("/runs/stream")
async def stream_stateless(
    body: RunCreate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    return await _stream(runtime, authorize, None, body)


@router.post("/threads/{thread_id}/runs/wait")
async def wait_run(
    thread_id: UUID, body: RunCreate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    return await _wait(runtime, authorize, thread_id, body)


@router.post("/runs/wait")
async def wait_stateless(body: RunCreate, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    return await _wait(runtime, authorize, None, body)


@router.post("/threads/{thread_id}/runs")
async def create_run(
    thread_id: UUID, body: RunCreate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    return await _create(runtime, authorize, thread_id, body)


@router.post("/runs")
async def create_stateless(
    body: RunCreate, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    return await _create(runtime, authorize, None, body)


@router.post("/runs/batch")
async def create_batch(
    body: list[RunCreate], runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    requests = [(await authorize_run(authorize, None, b.to_request()))[0] for b in body]
    created = await runtime.service.submit_batch(requests)
    return JSON([run_json(r) for r in created])


async def _submit(
    runtime: Runtime,
    authorize: Authorizer,
    thread_id: UUID | None,
    body: RunCreate,
    *,
    subscribe: bool,
) -> Submission:
    request, filter = await authorize_run(authorize, thread_id, body.to_request())
    return await runtime.service.submit(thread_id, request, subscribe=subscribe, filter=filter)


async def _create(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID | None, body: RunCreate
) -> Response:
    submission = await _submit(runtime, authorize, thread_id, body, subscribe=False)
    location = run_location(submission.run, stateless=thread_id is None)
    return JSON(run_json(submission.run), headers={"Content-Location": location})


async def _stream(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID | None, body: RunCreate
) -> Response:
    submission = await _submit(runtime, authorize, thread_id, body, subscribe=True)
    assert submission.subscription is not None
    run = submission.run
    relay = Relay(
        submission.subscription,
        runtime.settings.sse_heartbeat_seconds,
        _poller(runtime, run),
        on_disconnect=_canceller(runtime, run) if body.on_disconnect == "cancel" else None,
        resume=resumer(runtime, run),
    )
    return sse_response(relay.frames(), run, stateless=thread_id is None)


async def _wait(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID | None, body: RunCreate
) -> Response:
    submission = await _submit(runtime, authorize, thread_id, body, subscribe=True)
    assert submission.subscription is not None
    run = submission.run
    output = final_output(
        submission.subscription,
        runtime.settings.sse_heartbeat_seconds,
        _poller(runtime, run),
        _canceller(runtime, run) if body.on_disconnect == "cancel" else None,
    )
    return json_stream_response(output, run, stateless=thread_id is None)


# -- join -----------------------------------------------------------------------------


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_stream(
    thread_id: UUID,
    run_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    stream_mode: StreamModes = [],  # noqa: B006 (FastAPI copies query defaults)
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    filter = await authorize("threads", "read", {"thread_id": thread_id, "run_id": run_id})
    return await _join_stream(
        runtime, thread_id, run_id, stream_mode, cancel_on_disconnect, last_event_id, filter
    )


@router.get("/runs/{run_id}/stream")
async def join_stateless_stream(
    run_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    stream_mode: StreamModes = [],  # noqa: B006
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    filter = await authorize("threads", "read", {"thread_id": None, "run_id": run_id})
    return await _join_stream(
        runtime, None, run_id, stream_mode, cancel_on_disconnect, last_event_id, filter
    )


async def _join_stream(
    runtime: Runtime,
    thread_id: UUID | None,
    run_id: UUID,
    stream_mode: list[str],
    cancel_on_disconnect: bool,
    last_event_id: str | None,
    filter: Filter | None,
) -> Response:
    """Live events from now on; a resumable run also replays what came after Last-Event-ID."""
    modes = parse_modes(stream_mode)
    if last_event_id:
        event_id_key(last_event_id)  # a malformed id is refused before we subscribe
    run, subscription = await runtime.service.join(run_id, thread_id, filter)
    relay = Relay(
        subscription,
        runtime.settings.sse_heartbeat_seconds,
        _poller(runtime, run),
        modes=modes,
        finished=not run.status.active,
        on_disconnect=_canceller(runtime, run) if cancel_on_disconnect else None,
        resume=resumer(runtime, run),
    )
    if run.options.resumable and last_event_id:  # read page by page as the client takes them
        relay.last_id, relay.replay = last_event_id, True
    return sse_response(relay.frames(), run, stateless=thread_id is None)


def parse_modes(values: list[str], allowed: Collection[str] = STREAM_MODES) -> set[str] | None:
    """stream_mode as one value, repeated keys, a JSON array, or empty (no filter)."""
    modes: list[str] = []
    for value in values:
        if value.startswith("["):
            modes += _json_modes(value)
        elif value:
            modes.append(value)
    try:
        return set(check_modes(modes, allowed)) if modes else None
    except ValueError as exc:
        raise Invalid(f"stream_mode: {exc}") from None


def _json_modes(value: str) -> list[str]:
    try:
        modes = json.loads(value)
    except ValueError:
        raise Invalid("stream_mode: not a JSON array of mode names") from None
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise Invalid("stream_mode: not a JSON array of mode names")
    return modes


@router.get("/threads/{thread_id}/runs/{run_id}/join")
async def join_run(
    thread_id: UUID,
    run_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    cancel_on_disconnect: bool = False,
) -> Response:
    """The run's final output: at once if it has ended, else after newline keep-alives."""
    filter = await authorize("threads", "read", {"thread_id": thread_id, "run_id": run_id})
    run, subscription = await runtime.service.join(run_id, thread_id, filter)
    canceller = _canceller(runtime, run) if cancel_on_disconnect else None
    return await _final(runtime, run, subscription, canceller)


async def _final(
    runtime: Runtime, run: Run, subscription: Subscription, canceller: OnDisconnect | None
) -> Response:
    output = final_output(
        subscription,
        runtime.settings.sse_heartbeat_seconds,
        _poller(runtime, run),
        canceller,
        finished=not run.status.active,
    )
    return json_stream_response(output, run, stateless=False)


# -- cancel and delete ----------------------------------------------------------------


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: UUID,
    run_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    wait: bool = False,
    action: Action = CancelAction.INTERRUPT,
) -> Response:
    value = {"thread_id": thread_id, "run_id": run_id, "action": action.value}
    filter = await authorize("threads", "update", value)
    if not wait:
        await runtime.service.cancel([run_id], action, thread_id=thread_id, filter=filter)
        return Response(status_code=202)
    run, subscription = await runtime.service.join(run_id, thread_id, filter)
    try:
        await runtime.service.cancel([run_id], action, thread_id=thread_id, filter=filter)
    except NotFound:
        await subscription.close()
        raise
    return await _final(runtime, run, subscription, None)


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(
    body: BulkCancel,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    action: Action = CancelAction.INTERRUPT,
) -> Response:
    value = {"thread_id": body.thread_id, "action": action.value}
    filter = await authorize("threads", "update", value)
    if body.status is not None:
        await runtime.service.cancel_where(body.status, action, filter)
    else:
        assert body.run_ids is not None
        thread_id = body.thread_id
        await runtime.service.cancel(body.run_ids, action, thread_id=thread_id, filter=filter)
    return Response(status_code=204)


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(
    thread_id: UUID, run_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    filter = await authorize("threads", "delete", {"thread_id": thread_id, "run_id": run_id})
    await runtime.service.delete_run(thread_id, run_id, filter)
    return Response(status_code=204)


# -- read -----------------------------------------------------------------------------


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    thread_id: UUID,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    limit: int = Query(default=10, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    status: str | None = None,
) -> Response:
    value = {"thread_id": thread_id, "status": status, "limit": limit, "offset": offset}
    filter = await authorize("threads", "search", value)
    await runtime.threads.get(thread_id, include_temporary=True, filter=filter)
    found = await runtime.runs.list(
        thread_id, limit=limit, offset=offset, status=status or None, filter=filter
    )
    return JSON([run_json(r) for r in found])


@router.get("/threads/{thread_id}/runs/{run_id}")
async def get_run(
    thread_id: UUID, run_id: UUID, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    filter = await authorize("threads", "read", {"thread_id": thread_id, "run_id": run_id})
    await runtime.threads.get(thread_id, include_temporary=True, filter=filter)
    return JSON(run_json(await runtime.runs.get(run_id, thread_id, filter=filter)))


def _poller(runtime: Runtime, run: Run) -> Poll:
    if not run.status.active:  # read as ended: its row need not be read again
        ended = run

        async def output() -> dict[str, Any] | None:
            return await runtime.service.ended_output(ended)

        return output
    return poller(runtime.service, run)


def _canceller(runtime: Runtime, run: Run) -> OnDisconnect:
    """Cancels the run when its client goes away (on_disconnect / cancel_on_disconnect)."""

    async def cancel() -> None:
        with contextlib.suppress(NotFound):  # it ended meanwhile
            await runtime.service.cancel([run.run_id], CancelAction.INTERRUPT)

    return cancel
