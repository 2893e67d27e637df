"""Executes one claimed run: graph.astream → encoded, mode-tagged SSE frames → outcome."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.types import Command, Send, StreamMode

from broker import jsonable
from broker.events import sse_frame
from broker.models import Claim, RunOutcome, RunStatus, ThreadStatus
from broker.service import ThreadResult

log = logging.getLogger(__name__)

# Requested stream mode → LangGraph's stream mode (and the SSE event name it produces).
MODES = {
    "values": "values",
    "updates": "updates",
    "messages-tuple": "messages",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
}

Emit = Callable[[bytes], None]


@dataclass
class Execution:
    """What one execution produced besides its frames."""

    last_values: Any = None
    outcome: RunOutcome = field(default_factory=lambda: RunOutcome(RunStatus.SUCCESS))


def metadata_frame(claim: Claim) -> bytes:
    data = {"run_id": str(claim.run.run_id), "attempt": claim.attempt}
    return sse_frame("metadata", jsonable.dumps(data))


def error_payload(exc: BaseException) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": str(exc)}


async def execute(
    claim: Claim,
    graph: Pregel[Any, Any],
    checkpointer: BaseCheckpointSaver[str] | None,
    emit: Emit,
) -> tuple[RunOutcome, ThreadResult]:
    """Runs the graph to its end (or error), emitting frames; never raises for graph errors."""
    kwargs = claim.run.kwargs
    bound = graph.copy(update={"checkpointer": checkpointer})
    config = run_config(claim)
    emit(metadata_frame(claim))
    execution = Execution()
    try:
        await _stream(bound, config, kwargs, emit, execution)
    except Exception as exc:
        log.info("run %s failed: %r", claim.run.run_id, exc)
        execution.outcome = _failed(exc)
        emit(sse_frame("error", jsonable.dumps(execution.outcome.error)))
    result = await _thread_result(bound, config, execution, stateful=checkpointer is not None)
    return execution.outcome, result


def run_config(claim: Claim) -> RunnableConfig:
    config: dict[str, Any] = dict(claim.run.kwargs.get("config") or {})
    config["metadata"] = {**config.get("metadata", {}), **claim.run.metadata}
    config["run_id"] = claim.run.run_id
    return config  # type: ignore[return-value]


async def _stream(
    graph: Pregel[Any, Any],
    config: RunnableConfig,
    kwargs: dict[str, Any],
    emit: Emit,
    execution: Execution,
) -> None:
    requested = kwargs.get("stream_mode") or ["values"]
    published = {MODES[m] for m in requested}
    subgraphs = bool(kwargs.get("subgraphs"))
    stream = graph.astream(
        _graph_input(kwargs),
        config,
        stream_mode=cast(list[StreamMode], sorted(published | {"values"})),
        subgraphs=True,
        **_stream_options(kwargs),
    )
    async for namespace, mode, chunk in cast(
        AsyncIterator[tuple[tuple[str, ...], str, Any]], stream
    ):
        if not namespace and mode == "values":
            execution.last_values = chunk
        if mode in published and (subgraphs or not namespace or mode == "messages"):
            emit(sse_frame(_event_name(mode, namespace, subgraphs), jsonable.dumps(chunk)))
    execution.outcome = RunOutcome(RunStatus.SUCCESS, output=_output(execution.last_values))


def _event_name(mode: str, namespace: tuple[str, ...], subgraphs: bool) -> str:
    if namespace and subgraphs:
        return "|".join((mode, *namespace))
    return mode


def _stream_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in ("interrupt_before", "interrupt_after", "durability"):
        if kwargs.get(key):
            options[key] = kwargs[key]
    if kwargs.get("context"):
        options["context"] = kwargs["context"]
    return options


def _graph_input(kwargs: dict[str, Any]) -> Any:
    command = kwargs.get("command")
    if not command:
        return kwargs.get("input")
    return Command(
        resume=command.get("resume"),
        update=command.get("update"),
        goto=_goto(command.get("goto")),
    )


def _goto(goto: Any) -> Any:
    if goto is None:
        return ()
    if isinstance(goto, list):
        return [_goto(g) for g in goto]
    if isinstance(goto, dict):
        return Send(goto["node"], goto.get("input"))
    return goto


def _output(values: Any) -> dict[str, Any]:
    if isinstance(values, dict):
        return dict(jsonable.to_jsonable(values))
    return {} if values is None else {"__output__": jsonable.to_jsonable(values)}


def _failed(exc: BaseException) -> RunOutcome:
    error = error_payload(exc)
    return RunOutcome(RunStatus.ERROR, output={"__error__": error}, error=error)


async def _thread_result(
    graph: Pregel[Any, Any], config: RunnableConfig, execution: Execution, *, stateful: bool
) -> ThreadResult:
    outcome = execution.outcome
    if not stateful:
        return ThreadResult(
            _status(outcome, False), _output(execution.last_values), {}, outcome.error
        )
    snapshot = await graph.aget_state(config)
    interrupts = {t.id: list(t.interrupts) for t in snapshot.tasks if t.interrupts}
    return ThreadResult(
        status=_status(outcome, bool(snapshot.next)),
        values=jsonable.to_jsonable(snapshot.values),
        interrupts=jsonable.to_jsonable(interrupts),
        error=outcome.error,
    )


def _status(outcome: RunOutcome, has_next: bool) -> ThreadStatus:
    if outcome.status == RunStatus.ERROR:
        return ThreadStatus.ERROR
    return ThreadStatus.INTERRUPTED if has_next else ThreadStatus.IDLE
