"""message/stream: the run's progress as SSE events, each a JSON-RPC response.

The task (submitted), a status update (working), the AI's tokens as chunks of the
task's artifact (`append` after the first), then — once the run has ended — the whole
answer as the artifact's last chunk (`append: false`: it replaces the chunks, which
may include other AI messages' tokens) and the final status update (`final: true`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from a2a.compat.v0_3 import types as a2a
from pydantic import BaseModel

from api.a2a import mapping
from api.a2a.methods import Call, settled
from api.sse import HEARTBEAT, poller
from broker import jsonable
from broker.events import frame_data, frame_event, parse_end, split_frames
from broker.models import Run
from broker.service import Submission

STREAM_MODES = ["messages-tuple", "values"]


async def events(call: Call, submission: Submission, request_id: Any) -> AsyncIterator[bytes]:
    run = submission.run
    yield _event(request_id, mapping.task(run, a2a.TaskState.submitted, None))
    yield _event(request_id, _status(run, a2a.TaskStatus(state=a2a.TaskState.working), False))
    output: dict[str, Any] | None = None
    async for item in _relay(call, submission):
        if isinstance(item, dict):
            output = item
        else:
            yield _event(request_id, item) if isinstance(item, BaseModel) else item
    task = await settled(call, run, output or {}, None)
    if task.artifacts:
        update = a2a.TaskArtifactUpdateEvent(
            task_id=task.id,
            context_id=task.context_id,
            artifact=task.artifacts[0],
            append=False,
            last_chunk=True,
        )
        yield _event(request_id, update)
    yield _event(request_id, _status(run, task.status, True))


async def _relay(
    call: Call, submission: Submission
) -> AsyncIterator[a2a.TaskArtifactUpdateEvent | bytes | dict[str, Any]]:
    """Token chunks and heartbeats while the run goes on, then its output (a dict)."""
    subscription = submission.subscription
    assert subscription is not None
    run = submission.run
    poll = poller(call.runtime.service, run)
    heartbeat = call.runtime.settings.sse_heartbeat_seconds
    first = True
    try:
        while True:
            message = await subscription.get(heartbeat)
            if message is None:
                if (polled := await poll()) is not None:
                    yield polled
                    return
                yield HEARTBEAT
                continue
            if (end := parse_end(message)) is not None:
                yield end.get("output") or {}
                return
            for text in _tokens(message):
                yield _chunk(run, text, append=not first)
                first = False
    finally:
        with anyio.CancelScope(shield=True):
            await subscription.close()


def _tokens(message: bytes) -> list[str]:
    """The AI's text in the batch's `messages` frames ([chunk, metadata] each)."""
    texts = []
    for frame in split_frames(message):
        if frame_event(frame) != "messages":
            continue
        chunk = jsonable.loads(frame_data(frame))[0]
        if isinstance(chunk, dict) and chunk.get("type") in ("ai", "AIMessageChunk"):
            content = chunk.get("content")
            if isinstance(content, str) and content:
                texts.append(content)
    return texts


def _chunk(run: Run, text: str, *, append: bool) -> a2a.TaskArtifactUpdateEvent:
    artifact = a2a.Artifact(
        artifact_id=mapping.artifact_id(run),
        name=mapping.ARTIFACT_NAME,
        parts=[a2a.Part(root=a2a.TextPart(text=text))],
    )
    return a2a.TaskArtifactUpdateEvent(
        task_id=str(run.run_id),
        context_id=str(run.thread_id),
        artifact=artifact,
        append=append,
        last_chunk=False,
    )


def _status(run: Run, status: a2a.TaskStatus, final: bool) -> a2a.TaskStatusUpdateEvent:
    return a2a.TaskStatusUpdateEvent(
        task_id=str(run.run_id), context_id=str(run.thread_id), status=status, final=final
    )


def _event(request_id: Any, result: BaseModel) -> bytes:
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": result.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return b"data: " + jsonable.dumps(body) + b"\r\n\r\n"
