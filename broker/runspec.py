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
    metadata = {**assistant.metadata, **request.metadata}
    return {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": assistant.assistant_id,
        "status": RunStatus.PENDING.value,
        "metadata": {**metadata, "assistant_id": str(assistant.assistant_id)},
        "kwargs": run_kwargs(request, config, temporary=temporary),
        "multitask_strategy": request.multitask_strategy.value,
    }


def run_config(
    run_id: UUID, thread_id: UUID, request: RunRequest, assistant: Assistant
) -> dict[str, Any]:
    config = {**assistant.config, **request.config}
    configurable: dict[str, Any] = {
        **assistant.config.get("configurable", {}),
        **request.config.get("configurable", {}),
        **request.context,
        **(request.checkpoint or {}),
        "run_id": str(run_id),
        "thread_id": str(thread_id),
        "graph_id": assistant.graph_id,
        "assistant_id": str(assistant.assistant_id),
    }
    if request.checkpoint_id:
        configurable["checkpoint_id"] = request.checkpoint_id
    config["configurable"] = configurable
    return config


def run_options(request: RunRequest, config: dict[str, Any], *, temporary: bool) -> RunOptions:
    return RunOptions(
        input=request.input,
        command=request.command,
        config=config,
        context=request.context,
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


def run_kwargs(request: RunRequest, config: dict[str, Any], *, temporary: bool) -> RunKwargs:
    """The stored (and API) form of the run's options."""
    return run_options(request, config, temporary=temporary).wire()
