"""A2A's methods on our threads and runs: a context is a thread, a task is a run.

`message/send` runs the assistant on the context's thread (created if new; a new
context when none is named) and answers the task once the run ends (at once, as
submitted, with `configuration.blocking: false`); a task left waiting for input (an
interrupt) is `input-required`, its status message the interrupt's value, and a
message naming it (`taskId`) resumes the thread with a new run (a new task); `tasks/get` reads the run;
`tasks/cancel` cancels it through the service and answers it once it has stopped.
Each is authorized as its REST counterpart: threads.create_run, threads.read,
threads.update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID, uuid4

from a2a.compat.v0_3 import types as a2a
from pydantic import BaseModel, ValidationError

from api import agents
from api.a2a import mapping
from api.a2a.errors import (
    CONTENT_TYPE,
    PUSH_NOT_SUPPORTED,
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    UNSUPPORTED,
    RpcError,
)
from api.auth.authorize import Authorizer
from api.sse import await_output, poller
from broker.errors import NotFound
from broker.models import Assistant, CancelAction, Run, RunRequest
from broker.runtime import Runtime
from broker.service import Submission

MAX_HISTORY = 10  # as LangGraph caps historyLength
TEXT_MODES = ("text/plain", "text", "application/json")


@dataclass(frozen=True)
class Call:
    """One JSON-RPC call to one assistant, by one caller."""

    runtime: Runtime
    authorize: Authorizer
    assistant: Assistant
    accepts_messages: bool  # the assistant's input schema has `messages`


class TaskParams(BaseModel):
    """tasks/get and tasks/cancel: a2a's TaskQueryParams, with LangGraph's contextId."""

    id: str
    contextId: str | None = None
    historyLength: int | None = None


Model = TypeVar("Model", bound=BaseModel)


def parse(model: type[Model], params: Any) -> Model:
    try:
        return model.model_validate(params if params is not None else {})
    except ValidationError as exc:
        raise RpcError.params(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )


# -- message/send -------------------------------------------------------------------------


async def start(call: Call, params: a2a.MessageSendParams, stream_mode: list[str]) -> Submission:
    """Checks the message and submits its run on the context's thread: a new turn, or,
    naming a task waiting for input (`taskId`), the answer that resumes it."""
    configuration = params.configuration
    if configuration is not None:
        _check_configuration(configuration)
    message = params.message
    thread_id = mapping.context_id(message.context_id) or uuid4()
    if message.task_id is not None:
        return await _resume(call, params, thread_id, stream_mode)
    request = RunRequest(
        str(call.assistant.assistant_id),
        input=mapping.graph_input(message, call.accepts_messages),
        metadata=_metadata(params),
        stream_mode=stream_mode,
        if_not_exists="create",
    )
    return await agents.submit(call.runtime, call.authorize, thread_id, request)


def _metadata(params: a2a.MessageSendParams) -> dict[str, Any]:
    """The request's and the message's metadata: the run's (and a new thread's)."""
    return {**(params.metadata or {}), **(params.message.metadata or {})}


async def _resume(
    call: Call, params: a2a.MessageSendParams, thread_id: UUID, stream_mode: list[str]
) -> Submission:
    """A new run resuming the thread's interrupt with the message (its text, or a data
    part's `resume`); the task named must be the thread's latest and waiting for input."""
    message = params.message
    if message.context_id is None:
        raise RpcError.params("message.contextId: needed with taskId (the task's context)")
    task_id = message.task_id or ""
    run_id = _task_id(task_id)
    value = {"thread_id": thread_id, "run_id": run_id}
    filter = await call.authorize("threads", "read", value)
    run = await _run(call, run_id, thread_id, filter)
    task = await _current(call, run, None)
    if task.status.state is not a2a.TaskState.input_required:
        raise RpcError(
            UNSUPPORTED,
            f"Task {task_id} is {task.status.state.value}, not waiting for input: "
            "send the contextId alone to start a new task",
        )
    request = RunRequest(
        str(call.assistant.assistant_id),
        command={"resume": mapping.resume_value(message)},
        metadata=_metadata(params),
        stream_mode=stream_mode,
    )
    return await agents.submit(call.runtime, call.authorize, thread_id, request)


def _check_configuration(configuration: a2a.MessageSendConfiguration) -> None:
    if configuration.push_notification_config is not None:
        raise RpcError(PUSH_NOT_SUPPORTED, "Push notifications are not supported")
    modes = configuration.accepted_output_modes
    if modes and not set(modes) & set(TEXT_MODES):
        raise RpcError(CONTENT_TYPE, f"acceptedOutputModes: the agent answers {TEXT_MODES}")
    _check_history(configuration.history_length)


async def send(call: Call, params: a2a.MessageSendParams) -> dict[str, Any]:
    submission = await start(call, params, ["values"])
    configuration = params.configuration
    length = configuration.history_length if configuration else None
    if configuration is not None and configuration.blocking is False:
        assert submission.subscription is not None
        await submission.subscription.close()
        return _dump(mapping.task(submission.run, a2a.TaskState.submitted, None))
    output = await agents.output_of(call.runtime, submission)
    return _dump(await settled(call, submission.run, output, length))


async def settled(call: Call, run: Run, output: dict[str, Any], length: int | None) -> a2a.Task:
    """The task of a run that has ended, from its output."""
    run = await call.runtime.runs.get(run.run_id, run.thread_id)
    thread = await call.runtime.threads.get(run.thread_id)
    state = mapping.state(run, bool(thread.interrupts))
    error = agents.failure(output)
    return mapping.task(
        run, state, output, error=error, history_length=length, interrupts=thread.interrupts
    )


# -- tasks/get, tasks/cancel --------------------------------------------------------------


async def get(call: Call, params: TaskParams) -> dict[str, Any]:
    _check_history(params.historyLength)
    run_id, thread_id = _task_ids(params)
    value = {"thread_id": thread_id, "run_id": run_id}
    filter = await call.authorize("threads", "read", value)
    run = await _run(call, run_id, thread_id, filter)
    return _dump(await _current(call, run, params.historyLength))


async def cancel(call: Call, params: TaskParams) -> dict[str, Any]:
    run_id, thread_id = _task_ids(params)
    value = {"thread_id": thread_id, "run_id": run_id, "action": CancelAction.INTERRUPT.value}
    filter = await call.authorize("threads", "update", value)
    run = await _run(call, run_id, thread_id, filter)
    if not run.status.active:
        raise RpcError(TASK_NOT_CANCELABLE, f"Task {run_id} has ended ({run.status.value})")
    run, subscription = await call.runtime.service.join(run_id, run.thread_id, filter)
    try:
        await call.runtime.service.cancel(
            [run_id], CancelAction.INTERRUPT, thread_id=run.thread_id, filter=filter
        )
    except NotFound:  # it ended meanwhile
        await subscription.close()
        raise RpcError(TASK_NOT_CANCELABLE, f"Task {run_id} has ended") from None
    heartbeat = call.runtime.settings.sse_heartbeat_seconds
    await await_output(subscription, heartbeat, poller(call.runtime.service, run))
    run = await call.runtime.runs.get(run_id, run.thread_id)
    return _dump(await _current(call, run, None))


async def _current(call: Call, run: Run, length: int | None) -> a2a.Task:
    """The run as a task now; the thread's values are its own only if it is the
    thread's latest run."""
    thread = await call.runtime.threads.get(run.thread_id)
    latest = await call.runtime.runs.list(run.thread_id, limit=1)
    own = bool(latest) and latest[0].run_id == run.run_id
    values = thread.values if own else None
    state = mapping.state(run, own and bool(thread.interrupts))
    failed = own and state is a2a.TaskState.failed and thread.error
    error = agents.failure({"__error__": thread.error}) if failed else None
    return mapping.task(
        run, state, values, error=error, history_length=length, interrupts=thread.interrupts
    )


async def _run(call: Call, run_id: UUID, thread_id: UUID | None, filter: Any) -> Run:
    try:
        run = await call.runtime.runs.get(run_id, thread_id, filter=filter)
    except NotFound:
        raise RpcError(TASK_NOT_FOUND, f"Task {run_id} not found") from None
    if run.assistant_id != call.assistant.assistant_id or run.options.temporary:
        raise RpcError(TASK_NOT_FOUND, f"Task {run_id} not found")
    return run


def _task_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise RpcError(TASK_NOT_FOUND, f"Task {value} not found") from None


def _task_ids(params: TaskParams) -> tuple[UUID, UUID | None]:
    run_id = _task_id(params.id)
    if params.contextId is None:
        return run_id, None
    try:
        return run_id, UUID(params.contextId)
    except ValueError:
        raise RpcError(TASK_NOT_FOUND, f"Task {params.id} not found") from None


def _check_history(length: int | None) -> None:
    if length is not None and not 0 <= length <= MAX_HISTORY:
        raise RpcError.params(f"historyLength: must be between 0 and {MAX_HISTORY}")


def _dump(model: BaseModel) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped
