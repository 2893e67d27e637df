"""The checkpointer on SQLite (`broker dev`): each operation one transaction.

The engine of `broker.storage.sqlite` opens every transaction with BEGIN IMMEDIATE, so
it holds SQLite's single write lock from its first statement; a fenced put checks its
claim in the same transaction as the write.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Row, Select, Table, Text, and_, bindparam, exists, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert, UpdateBase

from broker import jsonable
from broker.storage.checkpoints.async_saver import Fence
from broker.storage.checkpoints.base import Checkpointer, Listing, StoredWrite
from broker.storage.checkpoints.rows import CHECKPOINT_KEY
from broker.storage.checkpoints.sqlite_filter import has_entries
from broker.storage.checkpoints.statements import on_conflict
from broker.storage.runs import owned
from broker.storage.tables import checkpoint_writes, checkpoints

_cp = checkpoints.c
_wr = checkpoint_writes.c

_Key = tuple[str, str, str]


class SqliteCheckpointer(Checkpointer):
    """The checkpoint tables on SQLite.

    Needs an engine from `create_sqlite_engine` (one transaction per operation).
    """

    async def _fetch(
        self, listing: Listing
    ) -> builtins.list[tuple[Mapping[str, Any], builtins.list[StoredWrite]]]:
        """The checkpoints `listing` picks, then all their writes, in one transaction."""
        query = _newest(listing)
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            writes = (await conn.execute(_writes_of(query))).all() if rows else []
        by_checkpoint: dict[_Key, builtins.list[StoredWrite]] = {}
        for write in writes:
            stored = (write.task_id, write.channel, write.type, write.blob)
            by_checkpoint.setdefault(_key(write), []).append(stored)
        return [(row._mapping, by_checkpoint.get(_key(row), [])) for row in rows]

    async def _upsert(
        self, table: Table, rows: builtins.list[dict[str, Any]], fence: Fence | None
    ) -> bool:
        if table is checkpoints:
            # Given here: the migrated server default, now(), is not a SQLite function.
            now = datetime.now(UTC)
            rows = [{**row, "created_at": now} for row in rows]
        async with self._engine.begin() as conn:
            await conn.execute(_put(table, (*rows[0],)), rows)
            # Checked after the write: from it on, this transaction holds the write lock
            # even if the engine began it DEFERRED, so no takeover commits before ours.
            if fence is None or await _holds(conn, fence):
                return True
            await conn.rollback()
        return False

    async def _atomically(self, steps: Sequence[UpdateBase]) -> None:
        """One transaction, the statements in order."""
        async with self._engine.begin() as conn:
            for step in steps:
                await conn.execute(step)


async def _holds(conn: AsyncConnection, fence: Fence) -> bool:
    held = exists().where(owned(fence.run_id, fence.attempt))
    return bool((await conn.execute(select(held))).scalar_one())


@functools.cache
def _put(table: Table, names: tuple[str, ...]) -> Insert:
    """The upsert of rows of the named columns, built once per table and columns."""
    # The JSON columns arrive as JSON text; binding them as JSON would encode them again.
    types = {name: table.c[name].type for name in names}
    values = {
        name: bindparam(name, type_=Text() if isinstance(type_, JSON) else type_)
        for name, type_ in types.items()
    }
    return on_conflict(sqlite_insert(table).values(values), names)


def _key(row: Row[*tuple[Any, ...]]) -> _Key:
    return row.thread_id, row.checkpoint_ns, row.checkpoint_id


def _newest(listing: Listing) -> Select[Any]:
    """Matching checkpoints, newest first; the thread and namespace break ties, so that
    `_writes_of` picks exactly the same rows under a limit."""
    conditions = [_cp[name] == value for name, value in listing.key.items()]
    if listing.filter is not None:
        # The stored metadata is jsonable's rendering; so is the filter, as on Postgres.
        conditions.extend(has_entries(_cp.metadata, jsonable.to_jsonable(listing.filter)))
    if listing.before is not None:
        conditions.append(_cp.checkpoint_id < listing.before)
    columns = (*CHECKPOINT_KEY, "parent_checkpoint_id", "type", "checkpoint", "metadata")
    order = (_cp.checkpoint_id.desc(), _cp.thread_id, _cp.checkpoint_ns)
    query = select(*(_cp[name] for name in columns)).where(*conditions).order_by(*order)
    return query.limit(listing.limit)


def _writes_of(query: Select[Any]) -> Select[Any]:
    """The pending writes of the checkpoints `query` picks, in langgraph's writes_sort_key order."""
    picked = query.with_only_columns(*(_cp[name] for name in CHECKPOINT_KEY)).subquery("picked")
    same_checkpoint = and_(*(_wr[name] == picked.c[name] for name in CHECKPOINT_KEY))
    columns = (*CHECKPOINT_KEY, "task_id", "channel", "type", "blob")
    return (
        select(*(_wr[name] for name in columns))
        .select_from(checkpoint_writes.join(picked, same_checkpoint))
        .order_by(_wr.task_path, _wr.task_id, _wr.idx)
    )
