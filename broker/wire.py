"""A run in the contract's JSON shape: what `GET /threads/{tid}/runs/{rid}` answers and
what a webhook delivery carries."""

from __future__ import annotations

from typing import Any

from broker.models import Run


def run_json(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "status": run.status.value,
        "metadata": run.metadata,
        "kwargs": run.kwargs,
        "multitask_strategy": run.multitask_strategy.value,
    }
