"""LangGraph's checkpointer on SQLite (`broker dev`), storing what PostgresCheckpointer stores.

Each operation is one transaction; the engine of `broker.storage.sqlite` opens every one
with BEGIN IMMEDIATE, so it holds SQLite's single write lock from its first statement.

A worker writes through `fenced(run_id, attempt)`: its puts land only while that attempt
still owns the running run, checked in the same transaction as the write.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import (
    ColumnElement,
    Executable,
    Row,
    Select,
    Table,
    TableValuedAlias,
    Text,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from broker import jsonable
from broker.storage.async_saver import AsyncSaver, Fence
from broker.storage.checkpoint_rows import (
    CHECKPOINT_KEY,
    WRITE_KEY,
    checkpoint_config,
    checkpoint_row,
    load_checkpoint,
    write_rows,
)
from broker.storage.checkpointer import _latest_id
from broker.storage.runs import owned
from broker.storage.tables import checkpoint_writes, checkpoints

_JSON_COLUMNS = frozenset({"metadata", "values"})

_cp = checkpoints.c
_wr = checkpoint_writes.c

_Rows = Sequence[Row[*tuple[Any, ...]]]


class SqliteCheckpointer(AsyncSaver):
    """Checkpoints and pending writes in the `checkpoints`/`checkpoint_writes` tables.

    Needs an engine from `create_sqlite_engine` (one transaction per operation).
    """

    def __init__(self, engine: AsyncEngine, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self._engine = engine

    # -- reads -------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        conditions = [
            _cp.thread_id == configurable["thread_id"],
            _cp.checkpoint_ns == configurable.get("checkpoint_ns", ""),
        ]
        if checkpoint_id := get_checkpoint_id(config):
            conditions.append(_cp.checkpoint_id == checkpoint_id)
        tuples = await self._load(_newest(conditions, limit=1))
        return tuples[0] if tuples else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        query = _newest(_list_conditions(config, filter, before), limit=limit)
        for item in await self._load(query):
            yield item

    # -- writes ------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        saved = checkpoint_config(
            configurable["thread_id"], configurable.get("checkpoint_ns", ""), checkpoint["id"]
        )
        row = checkpoint_row(
            self.serde, checkpoint, get_serializable_checkpoint_metadata(config, metadata)
        )
        row.update(saved["configurable"], parent_checkpoint_id=configurable.get("checkpoint_id"))
        await self._write(_upsert_checkpoint(row))
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if rows := write_rows(self.serde, config, writes, task_id, task_path):
            await self._write(_UPSERT_WRITES, rows)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._purge(_cp.thread_id == thread_id, _wr.thread_id == thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self._purge(_cp.run_id.in_([str(run_id) for run_id in run_ids]))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        async with self._engine.begin() as conn:
            for table in (checkpoints, checkpoint_writes):
                await conn.execute(_copy(table, source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if not thread_ids:
            return
        if strategy == "delete":
            await self._purge(_cp.thread_id.in_(thread_ids), _wr.thread_id.in_(thread_ids))
        elif strategy == "keep_latest":
            await self._purge(_cp.thread_id.in_(thread_ids) & (_cp.checkpoint_id < _latest_id()))
        else:
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")

    # -- helpers -----------------------------------------------------------

    async def _write(
        self, statement: Executable, rows: builtins.list[dict[str, Any]] | None = None
    ) -> None:
        """Executes `statement`; under a fence, only while the fence holds."""
        async with self._engine.begin() as conn:
            await conn.execute(statement, rows)
            if self._fence is not None:
                # Checked after the write: from it on, this transaction holds the write lock
                # even if the engine began it DEFERRED, so no takeover commits before ours.
                await _check(conn, self._fence)

    async def _purge(
        self, where: ColumnElement[bool], writes_where: ColumnElement[bool] | None = None
    ) -> None:
        """Deletes matching checkpoints and their writes (found through them, so first)."""
        if writes_where is None:
            doomed = select(*(_cp[name] for name in CHECKPOINT_KEY)).where(where)
            writes_where = tuple_(*(_wr[name] for name in CHECKPOINT_KEY)).in_(doomed)
        async with self._engine.begin() as conn:
            await conn.execute(delete(checkpoint_writes).where(writes_where))
            await conn.execute(delete(checkpoints).where(where))

    async def _load(self, query: Select[*tuple[Any, ...]]) -> builtins.list[CheckpointTuple]:
        """The checkpoints `query` picks, then all their writes, in one transaction."""
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).all()
            writes = (await conn.execute(_writes_of(query))).all() if rows else []
        pending = self._pending_writes(writes)
        return [self._to_tuple(row, pending.get(_key(row), [])) for row in rows]

    def _pending_writes(
        self, writes: _Rows
    ) -> dict[tuple[str, str, str], builtins.list[PendingWrite]]:
        by_checkpoint: dict[tuple[str, str, str], builtins.list[PendingWrite]] = {}
        for write in writes:
            value = self.serde.loads_typed((write.type, write.blob))
            by_checkpoint.setdefault(_key(write), []).append((write.task_id, write.channel, value))
        return by_checkpoint

    def _to_tuple(
        self, row: Row[*tuple[Any, ...]], pending_writes: builtins.list[PendingWrite]
    ) -> CheckpointTuple:
        checkpoint, metadata = load_checkpoint(self.serde, row.type, row.checkpoint, row.metadata)
        parent_id = row.parent_checkpoint_id
        return CheckpointTuple(
            config=checkpoint_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id),
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=checkpoint_config(row.thread_id, row.checkpoint_ns, parent_id)
            if parent_id
            else None,
            pending_writes=pending_writes,
        )


async def _check(conn: AsyncConnection, fence: Fence) -> None:
    """Raises LeaseLost, rolling the transaction back, unless the claim holds."""
    held = exists().where(owned(fence.run_id, fence.attempt))
    if not (await conn.execute(select(held))).scalar_one():
        raise fence.refused()


def _key(row: Row[*tuple[Any, ...]]) -> tuple[str, str, str]:
    return row.thread_id, row.checkpoint_ns, row.checkpoint_id


def _newest(conditions: Sequence[ColumnElement[bool]], limit: int | None) -> Select[Any]:
    """Matching checkpoints, newest first; the thread and namespace break ties, so that
    `_writes_of` picks exactly the same rows under a limit."""
    columns = (*CHECKPOINT_KEY, "parent_checkpoint_id", "type", "checkpoint", "metadata")
    order = (_cp.checkpoint_id.desc(), _cp.thread_id, _cp.checkpoint_ns)
    return select(*(_cp[name] for name in columns)).where(*conditions).order_by(*order).limit(limit)


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


def _list_conditions(
    config: RunnableConfig | None, filter: dict[str, Any] | None, before: RunnableConfig | None
) -> list[ColumnElement[bool]]:
    configurable = config["configurable"] if config else {}
    conditions: list[ColumnElement[bool]] = []
    for name in CHECKPOINT_KEY:
        if (value := configurable.get(name)) is not None:
            conditions.append(_cp[name] == value)
    if filter:
        # The stored metadata is jsonable's rendering; so is the filter, as on Postgres.
        conditions.extend(_has_entries(_cp.metadata, jsonable.to_jsonable(filter)))
    if before and (before_id := get_checkpoint_id(before)):
        conditions.append(_cp.checkpoint_id < before_id)
    return conditions


# Metadata filters: JSONB's containment (`metadata @> filter`) in SQLite's json_each.
# json_each rather than json_extract paths, which cannot address every key, and which
# turn true into 1 and JSON null into a missing key.


def _has_entries(
    document: ColumnElement[Any], expected: Mapping[str, Any]
) -> builtins.list[ColumnElement[bool]]:
    """The JSON object `document` has each key of `expected` with a value containing it."""
    return [_some_element(document, item, key=key) for key, item in expected.items()]


def _some_element(
    document: ColumnElement[Any], expected: Any, key: str | None = None
) -> ColumnElement[bool]:
    """Some element of the JSON `document` (the one under `key`, if given) contains `expected`."""
    element = func.json_each(document).table_valued("key", "type", "atom", "value")
    match = _contains(element, expected)
    return exists().where(match if key is None else and_(element.c.key == key, match))


def _contains(element: TableValuedAlias, expected: Any) -> ColumnElement[bool]:
    """The json_each `element` contains `expected`, as JSONB's `@>` would decide."""
    kind, atom = element.c.type, element.c.atom
    if isinstance(expected, dict):
        return and_(kind == "object", *_has_entries(_nested(element), expected))
    if isinstance(expected, builtins.list):
        items = (_some_element(_nested(element), item) for item in expected)
        return and_(kind == "array", *items)
    if expected is None:
        return kind == "null"
    if isinstance(expected, bool):  # before numbers: json_each's atom of true is 1
        return kind == ("true" if expected else "false")
    if isinstance(expected, str):
        return and_(kind == "text", atom == expected)
    return and_(kind.in_(("integer", "real")), atom == expected)


def _nested(element: TableValuedAlias) -> ColumnElement[Any]:
    """The element's JSON if it is an object or an array, else NULL (no elements).

    The value of a string element is its bare text, which json_each rejects as malformed;
    SQLite does not promise to test the element's type first.
    """
    return case((element.c.type.in_(("object", "array")), element.c.value))


# -- statements ---------------------------------------------------------------


def _upsert_checkpoint(row: dict[str, Any]) -> Insert:
    """A checkpoint put again replaces every written column but its key and created_at."""
    # The JSON columns arrive as JSON text; binding them as JSON would encode them again.
    values = {
        name: literal(value, Text) if name in _JSON_COLUMNS else value
        for name, value in row.items()
    }
    # Given here: the migrated server default, now(), is not a SQLite function.
    values["created_at"] = datetime.now(UTC)
    statement = sqlite_insert(checkpoints).values(values)
    updates = {name: statement.excluded[name] for name in row if name not in CHECKPOINT_KEY}
    return statement.on_conflict_do_update(index_elements=CHECKPOINT_KEY, set_=updates)


def _upsert_writes() -> Insert:
    """Regular writes are first-wins; special channels (negative idx) are overwritten."""
    statement = sqlite_insert(checkpoint_writes)
    updates = {name: statement.excluded[name] for name in ("channel", "type", "blob", "task_path")}
    return statement.on_conflict_do_update(
        index_elements=WRITE_KEY, set_=updates, where=statement.excluded.idx < 0
    )


_UPSERT_WRITES = _upsert_writes()


def _copy(table: Table, source_thread_id: str, target_thread_id: str) -> Insert:
    """Insert-select of a thread's rows under another thread_id; created_at restarts."""
    replaced: dict[str, ColumnElement[Any]] = {
        "thread_id": literal(target_thread_id, Text),
        "created_at": literal(datetime.now(UTC), _cp.created_at.type),
    }
    names = [column.name for column in table.c]
    rows = select(*(replaced.get(name, table.c[name]) for name in names))
    source = rows.where(table.c.thread_id == source_thread_id)
    return sqlite_insert(table).from_select(names, source).on_conflict_do_nothing()
