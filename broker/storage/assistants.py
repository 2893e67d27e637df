"""Assistants in Postgres, including the system assistant of every graph."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import NotFound
from broker.models import Assistant
from broker.storage import dialect as sql
from broker.storage.rows import to_assistant
from broker.storage.tables import assistants

# The namespace LangGraph Platform derives system assistant ids from (uuid5).
SYSTEM_NAMESPACE = UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

SORTABLE = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}


def system_assistant_id(graph_id: str) -> UUID:
    return uuid.uuid5(SYSTEM_NAMESPACE, graph_id)


# Every run names an assistant and they change rarely: a short-lived cache spares a
# database round trip per request, and the TTL bounds how stale another process can be.
CACHE_SECONDS = 5.0


class AssistantStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._cache: dict[UUID, tuple[float, Assistant]] = {}

    async def ensure_system(self, graph_ids: Iterable[str]) -> None:
        """One assistant per graph; existing rows (and their edits) are kept."""
        now = datetime.now(UTC)
        rows = [_system_row(g, now) for g in graph_ids]
        if not rows:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                sql.insert(conn.dialect, assistants).values(rows).on_conflict_do_nothing()
            )

    async def get(self, assistant_id: UUID) -> Assistant:
        cached = self._cache.get(assistant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        assistant = await self._load(assistant_id)
        self._cache[assistant_id] = (time.monotonic() + CACHE_SECONDS, assistant)
        return assistant

    async def _load(self, assistant_id: UUID) -> Assistant:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(assistants).where(assistants.c.assistant_id == assistant_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"Assistant '{assistant_id}' not found.")
        return to_assistant(row)

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        graph_id: str | None = None,
        name: str | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> tuple[list[Assistant], int]:
        """A page of matches and the total count."""
        query = select(assistants, func.count().over().label("total"))
        if metadata:
            query = query.where(
                sql.json_contains(self._engine.dialect, assistants.c.metadata, metadata)
            )
        if graph_id:
            query = query.where(assistants.c.graph_id == graph_id)
        if name:
            query = query.where(assistants.c.name.ilike(f"%{name}%"))
        column = assistants.c[sort_by if sort_by in SORTABLE else "created_at"]
        query = query.order_by(column.asc() if sort_order == "asc" else column.desc())
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        total = rows[0]._mapping["total"] if rows else 0
        return [to_assistant(r) for r in rows], total


def _system_row(graph_id: str, now: datetime) -> dict[str, Any]:
    return {
        "assistant_id": system_assistant_id(graph_id),
        "graph_id": graph_id,
        "name": graph_id,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "created_at": now,
        "updated_at": now,
    }
