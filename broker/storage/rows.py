"""Row → domain object conversions, shared by the repositories: every field of the
domain type from the column of the same name, enums converted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Row

from broker.models import (
    Assistant,
    Cron,
    MultitaskStrategy,
    Run,
    RunStatus,
    Thread,
    ThreadStatus,
    ThreadTTL,
)

T = TypeVar("T")
Readable = Row[Any] | Mapping[str, Any]  # a Row, or a prebuilt read's mapping


def to_assistant(row: Readable) -> Assistant:
    return _build(Assistant, _mapping(row))


def to_assistant_version(row: Readable) -> Assistant:
    """A row of assistant_versions; its `updated_at` is when the version was made."""
    m = _mapping(row)
    return _build(Assistant, m, updated_at=m["created_at"])


def to_thread(row: Readable) -> Thread:
    m = _mapping(row)
    return _build(Thread, m, status=ThreadStatus(m["status"]), ttl=_ttl(m))


def _ttl(m: Mapping[Any, Any]) -> ThreadTTL | None:
    if m["expires_at"] is None:
        return None
    return ThreadTTL(m["ttl_strategy"], m["ttl_minutes"], m["expires_at"])


def to_run(row: Readable) -> Run:
    m = _mapping(row)
    return _build(
        Run,
        m,
        status=RunStatus(m["status"]),
        multitask_strategy=MultitaskStrategy(m["multitask_strategy"]),
    )


def to_cron(row: Readable) -> Cron:
    return _build(Cron, _mapping(row))


def _mapping(row: Readable) -> Mapping[Any, Any]:
    return row._mapping if isinstance(row, Row) else row


def _build(cls: type[T], m: Mapping[Any, Any], **converted: Any) -> T:
    taken = {name: m[name] for name in _columns(cls) if name not in converted}
    return cls(**taken, **converted)


def _columns(cls: type[Any]) -> tuple[str, ...]:
    return _COLUMNS.get(cls) or _COLUMNS.setdefault(
        cls, tuple(f.name for f in fields(cls) if f.init)
    )


_COLUMNS: dict[type[Any], tuple[str, ...]] = {}
