"""Row → domain object conversions, shared by the repositories."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row

from broker.models import (
    Assistant,
    MultitaskStrategy,
    Run,
    RunStatus,
    Thread,
    ThreadStatus,
    ThreadTTL,
)


def to_assistant(row: Row[Any]) -> Assistant:
    m = row._mapping
    return Assistant(
        assistant_id=m["assistant_id"],
        graph_id=m["graph_id"],
        name=m["name"],
        description=m["description"],
        config=m["config"],
        context=m["context"],
        metadata=m["metadata"],
        version=m["version"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def to_thread(row: Row[Any] | Mapping[str, Any]) -> Thread:
    m = row._mapping if isinstance(row, Row) else row  # a Row, or a prebuilt read's mapping
    return Thread(
        thread_id=m["thread_id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        state_updated_at=m["state_updated_at"],
        metadata=m["metadata"],
        status=ThreadStatus(m["status"]),
        config=m["config"],
        values=m["values"],
        interrupts=m["interrupts"],
        error=m["error"],
        temporary=m["temporary"],
        ttl=_ttl(m),
    )


def _ttl(m: Any) -> ThreadTTL | None:
    if m["expires_at"] is None:
        return None
    return ThreadTTL(m["ttl_strategy"], m["ttl_minutes"], m["expires_at"])


def to_run(row: Row[Any] | Mapping[str, Any]) -> Run:
    m = row._mapping if isinstance(row, Row) else row  # a Row, or a prebuilt read's mapping
    return Run(
        run_id=m["run_id"],
        thread_id=m["thread_id"],
        assistant_id=m["assistant_id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        status=RunStatus(m["status"]),
        metadata=m["metadata"],
        kwargs=m["kwargs"],
        multitask_strategy=MultitaskStrategy(m["multitask_strategy"]),
        attempt=m["attempt"],
    )
