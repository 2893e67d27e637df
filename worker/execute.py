"""Executes one claimed run: graph.astream (or astream_events) → SSE frames → outcome."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.schema import StreamEvent
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from broker import jsonable
from broker.commands import to_command
from broker.errors import LeaseLost, StoreUnavailable
from broker.events import sse_frame
from broker.models import Claim, RunOutcome, RunStatus, ThreadStatus
from broker.options import RunOptions
from broker.outcome import error_frame, exception_payload, failed
from broker.service import ThreadResult
from worker.modes import EVENTS, Emit, FrameEncoder, langgraph_modes

log = logging.getLogger(__name__)

Chunk = tuple[tuple[str, ...], str, Any]
_YIELD_EVERY = 64  # chunks encoded between two turns for the publisher
_ANY_DEPTH = frozenset({"messages", "messages-tuple", EVENTS})  # sent from any depth


@dataclass
class Execution:
    """What one execution produced besides its frames."""

    last_values: Any = None
    outcome: RunOutcome = field(default_factory=lambda: RunOutcome(RunStatus.SUCCESS))


def metadata_frame(claim: Claim) -> bytes:
    data = {"run_id": str(claim.run.run_id), "attempt": claim.attempt}
    return sse_frame("metadata", jsonable.dumps(data))


async def execute(
    claim: Claim,
    graph: Pregel[Any, Any],
    checkpointer: BaseCheckpointSaver[str] | None,
    emit: Emit,
    store: BaseStore | None = None,
) -> tuple[RunOutcome, ThreadResult]:
    """Runs the graph to its end (or error), emitting frames; never raises for graph errors.

    The broker's store goes to every run, threaded or stateless (`runtime.store`,
    `get_store()`, a node's `store` parameter)."""
    bound = graph.copy(update={"checkpointer": checkpointer, "store": store})
    config = run_config(claim)
    emit(metadata_frame(claim))
    execution = Execution()
    try:
        await _stream(bound, config, claim.options, emit, execution)
    except (LeaseLost, StoreUnavailable):
        # Not the graph's failure: this attempt was taken over (stop quietly), or the
        # broker's own Postgres or Redis went away (the worker hands the run back).
        raise
    except Exception as exc:  # the graph's own failure, OSError and TimeoutError included
        run_id, attempt = claim.run.run_id, claim.attempt
        log.error("run %s attempt %d failed: %r", run_id, attempt, exc, exc_info=exc)
        error = exception_payload(exc)
        execution.outcome = failed(error)
        emit(error_frame(error))
    result = await _thread_result(bound, config, execution, stateful=checkpointer is not None)
    return execution.outcome, result


def run_config(claim: Claim) -> RunnableConfig:
    config: dict[str, Any] = dict(claim.options.config)
    # The attempt lands in every checkpoint's metadata: ops (and the chaos tests) can
    # see which claim of the run wrote it.
    config["metadata"] = {
        **config.get("metadata", {}),
        **claim.run.metadata,
        "run_attempt": claim.attempt,
    }
    config["run_id"] = claim.run.run_id
    return config  # type: ignore[return-value]


async def _stream(
    graph: Pregel[Any, Any],
    config: RunnableConfig,
    options: RunOptions,
    emit: Emit,
    execution: Execution,
) -> None:
    requested = list(options.stream_mode)
    encode = FrameEncoder(requested, subgraphs=options.subgraphs, emit=emit)
    budget = _YIELD_EVERY
    async with aclosing(_chunks(graph, config, options, requested)) as chunks:
        async for namespace, mode, chunk in chunks:
            if not namespace and mode == "values":
                execution.last_values = chunk
            encode(namespace, mode, chunk)
            budget -= 1
            if not budget:
                # LangGraph hands over a backlog without suspending: let the publisher
                # send what is encoded so far, so the first events leave at once.
                budget = _YIELD_EVERY
                await asyncio.sleep(0)
    execution.outcome = RunOutcome(RunStatus.SUCCESS, output=_output(execution.last_values))


async def _chunks(
    graph: Pregel[Any, Any], config: RunnableConfig, run: RunOptions, requested: list[str]
) -> AsyncGenerator[Chunk]:
    """`(namespace, mode, chunk)`, from every depth where the run may send a subgraph's
    chunks (the encoder filters them); from the root graph alone where it never does."""
    graph_input = _graph_input(run)
    depth = _needs_depth(run, requested)
    options: dict[str, Any] = {
        "stream_mode": langgraph_modes(requested),
        "subgraphs": depth,
        **run.graph_options(),
    }
    if EVENTS not in requested:
        stream = cast(AsyncGenerator[Any], graph.astream(graph_input, config, **options))
        async with aclosing(stream):
            async for item in stream:
                yield item if depth else ((), *item)
        return
    # `astream_events` runs `astream` with these options inside: the root graph's own
    # `on_chain_stream` events carry its chunks, so the other modes and the final values
    # still come through; every other event travels as the pseudo-mode `events`.
    events = cast(
        AsyncGenerator[StreamEvent],
        graph.astream_events(graph_input, config, version="v2", **options),
    )
    async with aclosing(events):
        async for event in events:
            if event["event"] == "on_chain_stream" and not event["parent_ids"]:
                yield cast(Chunk, event["data"]["chunk"])
            else:
                yield (), EVENTS, event


def _needs_depth(run: RunOptions, requested: list[str]) -> bool:
    """Whether any subgraph's chunk can be sent: with `stream_subgraphs`, and for tokens
    (which reach the client from any depth). Streaming every depth costs LangGraph a
    fifth more per run of a small graph, so runs that need only the root ask for it."""
    return run.subgraphs or any(mode in _ANY_DEPTH for mode in requested)


def _graph_input(options: RunOptions) -> Any:
    command = options.command
    return to_command(command) if command else options.input


def _output(values: Any) -> dict[str, Any]:
    if isinstance(values, dict):
        return dict(jsonable.to_jsonable(values))
    return {} if values is None else {"__output__": jsonable.to_jsonable(values)}


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
