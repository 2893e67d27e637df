"""The protocol's commands on a thread: `run.start` submits a run, `input.respond`
resumes the thread's interrupted run, `state.get` reads its values and
`state.listCheckpoints` its checkpoints. The first two go through `BrokerService.submit`, so
the run is queued, durable and heard by a stream on any API process."""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth.authorize import Authorizer, authorize_run
from api.protocol.schemas import ProtocolCommand
from api.schemas import RunCreate
from broker.models import Thread, ThreadStatus
from broker.runtime import Runtime

# The modes the encoder turns into the protocol's channels.
RUN_MODES = ["values", "updates", "messages-tuple", "custom", "tasks"]

Code = Literal[
    "invalid_argument",
    "unknown_command",
    "no_such_run",
    "no_such_interrupt",
    "permission_denied",
    "not_supported",
    "no_such_subscription",
    "unknown_error",
]
CODES: dict[int, Code] = {403: "permission_denied", 404: "no_such_run"}


class CommandFailed(Exception):
    """A command the server refuses, with the protocol's error code and an HTTP status."""

    def __init__(self, code: Code, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    def response(self, command_id: int | None) -> dict[str, Any]:
        # `detail` for our error rule and the SDK's HTTP errors, the rest for the protocol.
        return {
            "detail": self.message,
            "type": "error",
            "id": command_id,
            "error": self.code,
            "message": self.message,
        }


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunStart(_Params):
    assistant_id: str
    input: Any = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    multitask_strategy: Literal["reject", "rollback", "interrupt", "enqueue"] | None = Field(
        default=None, alias="multitaskStrategy"
    )


class Response(_Params):
    namespace: list[str] = Field(default_factory=list)
    interrupt_id: str
    response: Any = None


class InputRespond(_Params):
    namespace: list[str] = Field(default_factory=list)
    interrupt_id: str | None = None
    response: Any = None
    responses: list[Response] | None = None
    update: dict[str, Any] | None = None
    goto: Any = None
    config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    def answers(self) -> dict[str, Any]:
        if self.responses is not None:
            return {r.interrupt_id: r.response for r in self.responses}
        if self.interrupt_id is None:
            raise CommandFailed("invalid_argument", "params.interrupt_id: required")
        return {self.interrupt_id: self.response}


async def execute(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID, command: ProtocolCommand
) -> dict[str, Any]:
    """The command's `result`; CommandFailed when the protocol refuses it, a BrokerError
    (answered `{"detail"}` like every route's) when the service does."""
    if command.method == "run.start":
        return await _run_start(runtime, authorize, thread_id, _parse(RunStart, command))
    if command.method == "input.respond":
        return await _respond(runtime, authorize, thread_id, _parse(InputRespond, command))
    if command.method == "state.get":
        return await _state(runtime, authorize, thread_id, _parse(StateGet, command))
    if command.method == "state.listCheckpoints":
        return await _checkpoints(runtime, authorize, thread_id, _parse(ListCheckpoints, command))
    if command.method in UNSUPPORTED:
        raise CommandFailed("not_supported", f"{command.method}: {UNSUPPORTED[command.method]}")
    if command.method.startswith("subscription."):
        raise CommandFailed(
            "not_supported", f"{command.method}: only over the WebSocket of /stream/events"
        )
    raise CommandFailed("unknown_command", f"method: unknown command '{command.method[:64]}'")


# Commands the v2 protocol names that this server refuses, each with why; answering
# them falsely (an empty tree, a fork that is not one) would mislead a client.
UNSUPPORTED = {
    "agent.getTree": "the server keeps no agent tree for a thread",
    "state.fork": "forking from a checkpoint is not offered over the protocol yet; "
    "use POST /threads/{id}/runs with a checkpoint",
    "input.inject": "injecting input into a running run is not supported; "
    "start a run with multitaskStrategy instead",
    "subscription.reconnect": "reconnect by subscribing again with `since`",
}


class ListCheckpoints(_Params):
    namespace: list[str] = Field(default_factory=list)
    limit: int = Field(default=10, ge=1, le=1000)


class StateGet(_Params):
    namespace: list[str] = Field(default_factory=list)
    keys: list[str] | None = None


P = TypeVar("P", bound=_Params)


def _parse(model: type[P], command: ProtocolCommand) -> P:
    try:
        return model.model_validate(command.params)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> CommandFailed:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in ("params", *first["loc"]))
    return CommandFailed("invalid_argument", f"{where}: {first['msg']}")


async def _submit(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID, body: dict[str, Any]
) -> dict[str, Any]:
    try:
        run = RunCreate(**body, stream_mode=RUN_MODES, stream_subgraphs=True, stream_resumable=True)
    except ValidationError as exc:
        raise _invalid(exc) from None
    request, filter = await authorize_run(authorize, thread_id, run.to_request())
    submission = await runtime.service.submit(thread_id, request, subscribe=False, filter=filter)
    return {"run_id": str(submission.run.run_id)}


async def _run_start(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID, params: RunStart
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "assistant_id": params.assistant_id,
        "input": params.input,
        "config": params.config or {},
        "metadata": params.metadata or {},
        "if_not_exists": "create",  # the SDK mints the thread id; its first run makes it
    }
    if params.multitask_strategy is not None:
        body["multitask_strategy"] = params.multitask_strategy
    return await _submit(runtime, authorize, thread_id, body)


async def _respond(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID, params: InputRespond
) -> dict[str, Any]:
    answers = params.answers()
    read = await authorize("threads", "read", {"thread_id": thread_id})
    thread = await runtime.threads.get(thread_id, filter=read)
    asked = {
        i.get("id")
        for group in (thread.interrupts or {}).values()
        for i in group
        if isinstance(i, dict)
    }
    # A client hears an interrupt before its run has ended and stored it: while the
    # thread is busy the answer is queued behind that run (enqueue), unchecked.
    settled = thread.status != ThreadStatus.BUSY
    for interrupt_id in answers:
        if settled and interrupt_id not in asked:
            raise CommandFailed(
                "no_such_interrupt",
                f"params.interrupt_id: '{interrupt_id[:64]}' is not pending on this thread",
                404,
            )
    latest = await runtime.runs.list(thread_id, limit=1, filter=read)
    if not latest:
        raise CommandFailed("no_such_run", "thread: no run to resume", 404)
    resume: dict[str, Any] = {"resume": answers}
    if params.update is not None:
        resume["update"] = params.update
    if params.goto is not None:
        resume["goto"] = params.goto
    body = {
        "assistant_id": str(latest[0].assistant_id),
        "command": resume,
        "config": params.config or {},
        "metadata": params.metadata or {},
    }
    return await _submit(runtime, authorize, thread_id, body)


async def _root_thread(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID, namespace: list[str], what: str
) -> Thread:
    """The thread, if the caller may read it, for a read of its root graph's `what`."""
    if namespace:
        raise CommandFailed("not_supported", f"params.namespace: only the root graph's {what}")
    read = await authorize("threads", "read", {"thread_id": thread_id})
    return await runtime.threads.get(thread_id, filter=read)


async def _state(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID, params: StateGet
) -> dict[str, Any]:
    """The thread's current values (those named by `keys`) and their checkpoint."""
    thread = await _root_thread(runtime, authorize, thread_id, params.namespace, "state")
    state = await runtime.state.get(thread)
    values = state.get("values") or {}
    if params.keys is not None and isinstance(values, dict):
        values = {k: v for k, v in values.items() if k in params.keys}
    result: dict[str, Any] = {"values": values}
    checkpoint = state.get("checkpoint") or {}
    if checkpoint.get("checkpoint_id"):
        result["checkpoint"] = {
            "id": checkpoint["checkpoint_id"],
            "ns": checkpoint.get("checkpoint_ns") or "",
        }
    return result


async def _checkpoints(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID, params: ListCheckpoints
) -> dict[str, Any]:
    """The thread's root checkpoints, newest first, read from the checkpointer."""
    thread = await _root_thread(runtime, authorize, thread_id, params.namespace, "checkpoints")
    states = await runtime.state.history(thread, limit=params.limit)
    return {"checkpoints": [_checkpoint(s) for s in states]}


def _checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    checkpoint = state.get("checkpoint") or {}
    parent = state.get("parent_checkpoint") or {}
    return {
        "id": checkpoint.get("checkpoint_id"),
        "ns": checkpoint.get("checkpoint_ns") or "",
        "parent_id": parent.get("checkpoint_id"),
        "metadata": state.get("metadata") or {},
        "created_at": state.get("created_at"),
        "next": state.get("next") or [],
    }
