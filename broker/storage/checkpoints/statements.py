"""The checkpoint tables' rules as SQLAlchemy statements, the same on both databases.

Built on the dialect's INSERT (both know ON CONFLICT and `excluded`); the backends
decide how the statements run (see `base.Checkpointer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Text, delete, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Delete, Insert

from broker.storage import dialect as sql
from broker.storage.checkpoints.rows import CHECKPOINT_KEY, WRITE_KEY
from broker.storage.tables import checkpoint_writes, checkpoints

_cp = checkpoints.c
_wr = checkpoint_writes.c

# A pending write's columns that a special channel's write again replaces.
_WRITE_VALUE = ("channel", "type", "blob", "task_path")


def on_conflict(statement: PgInsert | SqliteInsert, names: Sequence[str]) -> Insert:
    """The upsert of the named columns into the checkpoint table `statement` inserts into.

    A checkpoint put again replaces every written column but its key and created_at;
    regular writes are first-wins, special channels' (negative idx) are overwritten.
    """
    excluded = statement.excluded
    if statement.table is checkpoints:
        kept = {*CHECKPOINT_KEY, "created_at"}
        updates = {name: excluded[name] for name in names if name not in kept}
        return statement.on_conflict_do_update(index_elements=CHECKPOINT_KEY, set_=updates)
    updates = {name: excluded[name] for name in _WRITE_VALUE}
    return statement.on_conflict_do_update(
        index_elements=WRITE_KEY, set_=updates, where=excluded.idx < 0
    )


def purge(
    where: ColumnElement[bool], writes_where: ColumnElement[bool] | None = None
) -> tuple[Delete, Delete]:
    """Deletes of the matching checkpoints' writes, then of the checkpoints.

    Without `writes_where`, the writes are found through the checkpoints: run in this
    order, or on one snapshot.
    """
    if writes_where is None:
        doomed = select(*(_cp[name] for name in CHECKPOINT_KEY)).where(where)
        writes_where = tuple_(*(_wr[name] for name in CHECKPOINT_KEY)).in_(doomed)
    return delete(checkpoint_writes).where(writes_where), delete(checkpoints).where(where)


def older_than_latest() -> ColumnElement[bool]:
    """The outer checkpoint is not the newest of its thread and namespace."""
    newer = checkpoints.alias("newer")
    same_ns = (newer.c.thread_id == _cp.thread_id) & (newer.c.checkpoint_ns == _cp.checkpoint_ns)
    latest = select(func.max(newer.c.checkpoint_id)).where(same_ns).scalar_subquery()
    return _cp.checkpoint_id < latest


def copy(dialect: Dialect, source_thread_id: str, target_thread_id: str) -> tuple[Insert, Insert]:
    """Insert-selects of a thread's checkpoints, then its writes, under another thread_id.

    Rows already there are kept; the copies' created_at is now.
    """
    replaced: dict[str, ColumnElement[Any]] = {
        "thread_id": literal(target_thread_id, Text),
        "created_at": sql.now(dialect),
    }
    copies = []
    for table in (checkpoints, checkpoint_writes):
        names = [column.name for column in table.c]
        rows = select(*(replaced.get(name, table.c[name]) for name in names))
        source = rows.where(table.c.thread_id == source_thread_id)
        insert: PgInsert | SqliteInsert = sql.insert(dialect, table)
        copies.append(insert.from_select(names, source).on_conflict_do_nothing())
    return copies[0], copies[1]
