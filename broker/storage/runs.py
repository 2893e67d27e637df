"""Runs in Postgres: insert, read, and the fenced claim/heartbeat/finish a worker does."""

from __future__ import annotations

import builtins
import functools
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Dialect, Select, and_, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import NotFound
from broker.models import Run, RunStatus
from broker.storage import dialect as sql
from broker.storage import visibility
from broker.storage.driver import Prebuilt
from broker.storage.rows import to_run
from broker.storage.tables import checkpoints, runs, threads
from broker.storage.visibility import Filter


def run_not_found(run_id: UUID) -> NotFound:
    return NotFound(f"Run '{run_id}' not found.")


# Every join, result and status request reads a run by id: prebuilt (storage.driver).
_BY_ID = select(runs).where(runs.c.run_id == bindparam("p_run_id", type_=runs.c.run_id.type))
_BY_ID_ON_THREAD = _BY_ID.where(
    runs.c.thread_id == bindparam("p_thread_id", type_=runs.c.thread_id.type)
)


def on_visible_thread(postgres: bool, filter: Filter | None = None) -> ColumnElement[bool]:
    """The run's thread passes the auth filter (`p_auth`): a run is as visible as its thread."""
    return exists(
        select(threads.c.thread_id).where(
            threads.c.thread_id == runs.c.thread_id,
            visibility.visible(postgres, threads.c.metadata, filter),
        )
    )


@functools.cache
def _scoped(dialect: Dialect, on_thread: bool) -> Any:
    """A run by id whose thread passes the auth filter (prebuilt, for authorised callers)."""
    statement = _BY_ID_ON_THREAD if on_thread else _BY_ID
    return statement.where(on_visible_thread(sql.is_postgres(dialect)))


class RunStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._prebuilt = Prebuilt(engine)

    async def get(
        self, run_id: UUID, thread_id: UUID | None = None, *, filter: Filter | None = None
    ) -> Run:
        """The run (on `thread_id`, if given), if `filter` lets the caller see its thread."""
        params: dict[str, Any] = {"p_run_id": run_id}
        if thread_id is not None:
            params["p_thread_id"] = thread_id
        if filter is not None:
            statement = _scoped(self._engine.dialect, thread_id is not None)
            params |= visibility.params(filter)
        else:
            statement = _BY_ID if thread_id is None else _BY_ID_ON_THREAD
        row = await self._prebuilt.fetchrow(statement, params)
        if row is None:
            raise run_not_found(run_id)
        return to_run(row)

    async def list(
        self,
        thread_id: UUID,
        *,
        limit: int = 10,
        offset: int = 0,
        status: str | None = None,
        filter: Filter | None = None,
    ) -> list[Run]:
        query = select(runs).where(runs.c.thread_id == thread_id)
        if filter is not None:
            query = query.where(on_visible_thread(sql.is_postgres(self._engine.dialect), filter))
        if status:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.created_at.desc()).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            return [to_run(r) for r in (await conn.execute(query)).all()]

    async def search(
        self, *, status: str | None = None, thread_id: UUID | None = None, limit: int = 20
    ) -> builtins.list[Run]:
        """The newest runs of any thread (`broker inspect runs`), on the status or thread index."""
        query = select(runs)
        if status:
            query = query.where(runs.c.status == status)
        if thread_id is not None:
            query = query.where(runs.c.thread_id == thread_id)
        query = query.order_by(runs.c.created_at.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [to_run(r) for r in (await conn.execute(query)).all()]

    async def wrote_checkpoints(self, run_id: UUID) -> bool:
        query = select(checkpoints.c.checkpoint_id).where(checkpoints.c.run_id == str(run_id))
        async with self._engine.connect() as conn:
            return (await conn.execute(query.limit(1))).first() is not None


@dataclass(frozen=True)
class Lease:
    owned: bool  # False: another attempt took the run over; stop
    cancel_action: str | None


def owned(run_id: Any, attempt: Any) -> Any:
    """The claim test: `attempt` still owns the running run (values or bind parameters)."""
    return and_(
        runs.c.run_id == run_id,
        runs.c.attempt == attempt,
        runs.c.status == RunStatus.RUNNING.value,
    )


def head_of(thread_id: Any, now: Any) -> Select[UUID, str]:
    """A thread's head run (id, status): the running one, else its oldest due pending one."""
    running = runs.c.status == RunStatus.RUNNING.value
    pending = runs.c.status == RunStatus.PENDING.value  # not IN: the claim is prebuilt
    return (
        select(runs.c.run_id, runs.c.status)
        .where(
            runs.c.thread_id == thread_id,
            running | (pending & (runs.c.created_at <= now)),
        )
        .order_by(running.desc(), runs.c.created_at, runs.c.run_id)
        .limit(1)
    )


def active_on(thread_id: Any) -> Select[UUID]:
    """The thread's pending or running runs (a value or a bind parameter).

    Spelled without IN so that prebuilt statements (storage.driver) can embed it.
    """
    active = (runs.c.status == RunStatus.PENDING.value) | (runs.c.status == RunStatus.RUNNING.value)
    return select(runs.c.run_id).where(runs.c.thread_id == thread_id, active)
