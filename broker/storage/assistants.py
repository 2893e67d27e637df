"""Assistants and their versions, including the system assistant of every graph.

`assistants` holds each assistant's current version; `assistant_versions` every version
it had. Each write changes both in one transaction.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Dialect, and_, bindparam, delete, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.errors import Conflict, NotFound
from broker.models import Assistant
from broker.storage import dialect as sql
from broker.storage import visibility
from broker.storage.driver import Prebuilt
from broker.storage.rows import to_assistant, to_assistant_version
from broker.storage.tables import assistant_versions, assistants
from broker.storage.visibility import Filter

# The namespace LangGraph Platform derives system assistant ids from (uuid5).
SYSTEM_NAMESPACE = UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

SORTABLE = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}


def system_assistant_id(graph_id: str) -> UUID:
    return uuid.uuid5(SYSTEM_NAMESPACE, graph_id)


def assistant_not_found(assistant_id: UUID) -> NotFound:
    return NotFound(f"Assistant '{assistant_id}' not found.")


@dataclass(frozen=True)
class AssistantSpec:
    """What one version of an assistant holds."""

    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    name: str
    description: str | None


@functools.cache
def _by_id_prebuilt(dialect: Dialect) -> Any:
    """Every run reads its assistant by id (its current version may have changed in another
    process a moment ago): prebuilt, one autocommitted round trip on Postgres; with the
    auth filter (`p_auth`, `{}` without one) in the same statement."""
    return select(assistants).where(
        assistants.c.assistant_id
        == bindparam("p_assistant_id", type_=assistants.c.assistant_id.type),
        visibility.visible(sql.is_postgres(dialect), assistants.c.metadata),
    )


class AssistantStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._prebuilt = Prebuilt(engine)

    @property
    def _dialect(self) -> Dialect:
        return self._engine.dialect

    async def ensure_system(self, graphs: Mapping[str, str | None]) -> None:
        """One assistant per graph (described as langgraph.json describes the graph);
        existing rows (and their edits) are kept."""
        now = datetime.now(UTC)
        rows = [_system_row(g, description, now) for g, description in graphs.items()]
        if not rows:
            return
        versions = [{k: v for k, v in r.items() if k != "updated_at"} for r in rows]
        async with self._engine.begin() as conn:
            await conn.execute(
                sql.insert(conn.dialect, assistants).values(rows).on_conflict_do_nothing()
            )
            await conn.execute(
                sql.insert(conn.dialect, assistant_versions)
                .values(versions)
                .on_conflict_do_nothing()
            )

    # -- reads ----------------------------------------------------------------------------

    async def get(self, assistant_id: UUID, filter: Filter | None = None) -> Assistant:
        """The assistant, if `filter` (an auth filter) lets the caller see it."""
        params = {"p_assistant_id": assistant_id} | visibility.params(filter)
        row = await self._prebuilt.fetchrow(_by_id_prebuilt(self._dialect), params)
        if row is None:
            raise assistant_not_found(assistant_id)
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
        filter: Filter | None = None,
    ) -> tuple[list[Assistant], int]:
        """A page of matches and the total count."""
        query = select(assistants, func.count().over().label("total")).where(
            _matching(self._dialect, metadata, graph_id, name, filter)
        )
        column = assistants.c[sort_by if sort_by in SORTABLE else "created_at"]
        query = query.order_by(column.asc() if sort_order == "asc" else column.desc())
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).all()
        total = rows[0]._mapping["total"] if rows else 0
        return [to_assistant(r) for r in rows], total

    async def count(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        graph_id: str | None = None,
        name: str | None = None,
        filter: Filter | None = None,
    ) -> int:
        query = (
            select(func.count())
            .select_from(assistants)
            .where(_matching(self._dialect, metadata, graph_id, name, filter))
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def versions(
        self,
        assistant_id: UUID,
        *,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Assistant]:
        """The assistant's versions, newest first (`updated_at` is when each was made);
        with an auth filter, those whose metadata passes it."""
        query = select(assistant_versions).where(assistant_versions.c.assistant_id == assistant_id)
        if filter is not None:
            postgres = sql.is_postgres(self._dialect)
            query = query.where(visibility.visible(postgres, assistant_versions.c.metadata, filter))
        if metadata:
            query = query.where(
                sql.json_contains(self._dialect, assistant_versions.c.metadata, metadata)
            )
        query = query.order_by(assistant_versions.c.version.desc()).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [to_assistant_version(r) for r in rows]

    # -- writes ---------------------------------------------------------------------------

    async def create(
        self,
        assistant_id: UUID,
        spec: AssistantSpec,
        *,
        if_exists: str = "raise",
        filter: Filter | None = None,
    ) -> Assistant:
        """Version 1 of a new assistant; an existing id is returned or refused.

        ON CONFLICT DO NOTHING makes concurrent creates of one id safe: the losers wait
        for the winner's commit, insert nothing and read back what it wrote.
        """
        now = datetime.now(UTC)
        fields = asdict(spec)
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    sql.insert(conn.dialect, assistants)
                    .values(
                        assistant_id=assistant_id,
                        version=1,
                        created_at=now,
                        updated_at=now,
                        **fields,
                    )
                    .on_conflict_do_nothing()
                    .returning(assistants)
                )
            ).first()
            if row is not None:
                await _insert_version(conn, assistant_id, 1, spec)
        if row is not None:
            return to_assistant(row)
        if if_exists == "do_nothing":
            return await self.get(assistant_id, filter)
        raise Conflict(f"Assistant '{assistant_id}' already exists.")

    async def patch(
        self,
        assistant_id: UUID,
        changes: dict[str, Any],
        metadata: dict[str, Any] | None,
        filter: Filter | None = None,
    ) -> Assistant:
        """A new version (the highest yet) from the current one with `changes` replaced
        and `metadata` merged; it becomes the current version."""
        async with self._engine.begin() as conn:
            current = await _locked(conn, assistant_id, filter)
            spec = AssistantSpec(
                **{
                    **_spec_of(current),
                    **changes,
                    "metadata": {**current.metadata, **(metadata or {})},
                }
            )
            version = await _next_version(conn, assistant_id)
            await _insert_version(conn, assistant_id, version, spec)
            assistant = await _make_current(conn, assistant_id, version, spec)
        return assistant

    async def set_latest(
        self, assistant_id: UUID, version: int, filter: Filter | None = None
    ) -> Assistant:
        """Makes an existing version the current one."""
        async with self._engine.begin() as conn:
            await _locked(conn, assistant_id, filter)
            row = (
                await conn.execute(
                    select(assistant_versions).where(
                        assistant_versions.c.assistant_id == assistant_id,
                        assistant_versions.c.version == version,
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"Assistant '{assistant_id}' has no version {version}.")
            spec = AssistantSpec(**_spec_of(to_assistant_version(row)))
            assistant = await _make_current(conn, assistant_id, version, spec)
        return assistant

    async def delete(self, assistant_id: UUID, filter: Filter | None = None) -> None:
        """The assistant and every version of it (NotFound if `filter` hides it)."""
        async with self._engine.begin() as conn:
            await _locked(conn, assistant_id, filter)
            await conn.execute(
                delete(assistant_versions).where(assistant_versions.c.assistant_id == assistant_id)
            )
            deleted = (
                await conn.execute(
                    delete(assistants)
                    .where(assistants.c.assistant_id == assistant_id)
                    .returning(assistants.c.assistant_id)
                )
            ).first()
        if deleted is None:
            raise assistant_not_found(assistant_id)


def _by_id(dialect: Dialect, assistant_id: UUID, filter: Filter | None) -> Any:
    return select(assistants).where(
        assistants.c.assistant_id == assistant_id,
        visibility.visible(sql.is_postgres(dialect), assistants.c.metadata, filter),
    )


def _matching(
    dialect: Dialect,
    metadata: dict[str, Any] | None,
    graph_id: str | None,
    name: str | None,
    filter: Filter | None,
) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if filter:
        conditions.append(
            visibility.visible(sql.is_postgres(dialect), assistants.c.metadata, filter)
        )
    if metadata:
        conditions.append(sql.json_contains(dialect, assistants.c.metadata, metadata))
    if graph_id:
        conditions.append(assistants.c.graph_id == graph_id)
    if name:
        # A case-insensitive substring; `%` and `_` in the name are literal.
        conditions.append(assistants.c.name.icontains(name, autoescape=True))
    return and_(true(), *conditions)


async def _locked(conn: AsyncConnection, assistant_id: UUID, filter: Filter | None) -> Assistant:
    """The assistant's row (if `filter` lets the caller see it), locked until the
    transaction ends (SQLite: BEGIN IMMEDIATE)."""
    query = _by_id(conn.dialect, assistant_id, filter).with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise assistant_not_found(assistant_id)
    return to_assistant(row)


async def _next_version(conn: AsyncConnection, assistant_id: UUID) -> int:
    highest = (
        await conn.execute(
            select(func.max(assistant_versions.c.version)).where(
                assistant_versions.c.assistant_id == assistant_id
            )
        )
    ).scalar_one()
    return int(highest or 0) + 1


async def _insert_version(
    conn: AsyncConnection, assistant_id: UUID, version: int, spec: AssistantSpec
) -> None:
    await conn.execute(
        assistant_versions.insert().values(
            assistant_id=assistant_id,
            version=version,
            created_at=sql.now(conn.dialect),
            **asdict(spec),
        )
    )


async def _make_current(
    conn: AsyncConnection, assistant_id: UUID, version: int, spec: AssistantSpec
) -> Assistant:
    row = (
        await conn.execute(
            update(assistants)
            .where(assistants.c.assistant_id == assistant_id)
            .values(version=version, updated_at=sql.now(conn.dialect), **asdict(spec))
            .returning(assistants)
        )
    ).one()
    return to_assistant(row)


def _spec_of(assistant: Assistant) -> dict[str, Any]:
    """The fields of `assistant` that a version holds (AssistantSpec's)."""
    return {f.name: getattr(assistant, f.name) for f in fields(AssistantSpec)}


def _system_row(graph_id: str, description: str | None, now: datetime) -> dict[str, Any]:
    return {
        "assistant_id": system_assistant_id(graph_id),
        "graph_id": graph_id,
        "name": graph_id,
        "description": description,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
