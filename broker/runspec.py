"""How a run request becomes a run row: its config, kwargs and metadata."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from broker.models import Assistant, RunRequest, RunStatus
from broker.options import RunKwargs, RunOptions


def run_row(
    run_id: UUID, thread_id: UUID, request: RunRequest, assistant: Assistant, *, temporary: bool
) -> dict[str, Any]:
    config = run_config(run_id, thread_id, request, assistant)
    context = run_context(request, assistant)
    metadata = {**assistant.metadata, **request.metadata}
    return {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": assistant.assistant_id,
        "status": RunStatus.PENDING.value,
        "metadata": {**metadata, "assistant_id": str(assistant.assistant_id)},
        "kwargs": run_kwargs(request, config, context, temporary=temporary),
        "multitask_strategy": request.multitask_strategy.value,
    }


def run_context(request: RunRequest, assistant: Assistant) -> dict[str, Any]:
    """The assistant's current context, under the run's own."""
    return {**assistant.context, **request.context}


def run_config(
    run_id: UUID, thread_id: UUID, request: RunRequest, assistant: Assistant
) -> dict[str, Any]:
    """The assistant's current config under the run's; `configurable` also carries the
    context (as LangGraph Platform does, for graphs that still read it there) and the
    ids of the run, its thread, graph and assistant."""
    config = {**assistant.config, **request.config}
    configurable: dict[str, Any] = {
        **assistant.config.get("configurable", {}),
        **request.config.get("configurable", {}),
        **run_context(request, assistant),
        **(request.checkpoint or {}),
        **request.headers,
        "run_id": str(run_id),
        "thread_id": str(thread_id),
        "graph_id": assistant.graph_id,
        "assistant_id": str(assistant.assistant_id),
    }
    if request.checkpoint_id:
        configurable["checkpoint_id"] = request.checkpoint_id
    config["configurable"] = configurable
    return config


def run_options(
    request: RunRequest, config: dict[str, Any], context: dict[str, Any], *, temporary: bool
) -> RunOptions:
    return RunOptions(
        input=request.input,
        command=request.command,
        config=config,
        context=context,
        stream_mode=tuple(request.stream_mode),
        interrupt_before=request.interrupt_before,
        interrupt_after=request.interrupt_after,
        webhook=request.webhook,
        feedback_keys=request.feedback_keys,
        temporary=temporary,
        subgraphs=request.stream_subgraphs,
        resumable=request.stream_resumable,
        durability=request.durability,
        on_completion=request.on_completion,
    )


def run_kwargs(
    request: RunRequest, config: dict[str, Any], context: dict[str, Any], *, temporary: bool
) -> RunKwargs:
    """The stored (and API) form of the run's options."""
    return run_options(request, config, context, temporary=temporary).wire()
