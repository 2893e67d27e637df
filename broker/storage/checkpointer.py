"""LangGraph's checkpointer on SQLAlchemy Core + asyncpg.

The serde's typed blob is the exact record; the `values` and `metadata` JSONB
columns are readable renderings for ops and for metadata filters.

A worker writes through `fenced(run_id, attempt)`: its puts land only while that attempt
still owns the running run, checked in the same statement as the write.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
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
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Executable,
    Integer,
    Select,
    Table,
    TableValuedAlias,
    Text,
    bindparam,
    cast,
    column,
    delete,
    exists,
    func,
    literal,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Delete, Insert
from sqlalchemy.types import TypeEngine

from broker import jsonable
from broker.storage.async_saver import AsyncSaver
from broker.storage.checkpoint_rows import (
    CHECKPOINT_KEY,
    WRITE_KEY,
    checkpoint_config,
    checkpoint_row,
    load_checkpoint,
    write_rows,
)
from broker.storage.driver import Driver
from broker.storage.runs import owned
from broker.storage.tables import checkpoint_writes, checkpoints, runs

_cp = checkpoints.c
_wr = checkpoint_writes.c

# Adds the ON CONFLICT clause to an insert of the named columns.
_OnConflict = Callable[[PgInsert, Sequence[str]], Insert]


class PostgresCheckpointer(AsyncSaver):
    """Checkpoints and pending writes in the `checkpoints`/`checkpoint_writes` tables."""

    def __init__(self, engine: AsyncEngine, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        # Every operation is a single statement, so autocommit spares the
        # BEGIN and COMMIT round trips without giving up atomicity.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Writes and reads by key go to asyncpg directly (see broker.storage.driver),
        # which autocommits outside a transaction by itself: they take connections from
        # the plain engine, sparing the isolation level's set-and-reset on every checkout.
        self._driver = Driver(engine)

    # -- reads -------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        # Every run reads its thread's latest checkpoint to start and for its result.
        configurable = config["configurable"]
        key = {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),  # the root graph's
            "checkpoint_id": get_checkpoint_id(config),  # None: the latest
        }
        found = [t async for t in self.alist({"configurable": key}, limit=1)]
        return found[0] if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Newest first, on the driver: a prebuilt query per combination of conditions."""
        configurable = config["configurable"] if config else {}
        params = {
            f"p_{name}": value
            for name in CHECKPOINT_KEY
            if (value := configurable.get(name)) is not None
        }
        if filter:
            params["p_filter"] = jsonable.dumps(filter).decode()
        if before and (before_id := get_checkpoint_id(before)):
            params["p_before"] = before_id
        if limit is not None:
            params["p_limit"] = limit
        for row in await self._driver.fetch(_listing(frozenset(params)), params):
            yield self._to_tuple(row)

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
        await self._put(checkpoints, [row], _upsert_checkpoint)
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if rows := write_rows(self.serde, config, writes, task_id, task_path):
            await self._put(checkpoint_writes, rows, _upsert_writes)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._execute(_purge(_cp.thread_id == thread_id, _wr.thread_id == thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self._execute(_purge(_cp.run_id.in_([str(run_id) for run_id in run_ids])))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        copied = _copy(checkpoints, source_thread_id, target_thread_id).cte("copied_checkpoints")
        await self._execute(
            _copy(checkpoint_writes, source_thread_id, target_thread_id).add_cte(copied)
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if not thread_ids:
            return
        if strategy == "delete":
            await self._execute(
                _purge(_cp.thread_id.in_(thread_ids), _wr.thread_id.in_(thread_ids))
            )
        elif strategy == "keep_latest":
            await self._execute(
                _purge(_cp.thread_id.in_(thread_ids) & (_cp.checkpoint_id < _latest_id()))
            )
        else:
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")

    # -- helpers -----------------------------------------------------------

    async def _put(
        self,
        table: Table,
        rows: builtins.list[dict[str, Any]],
        on_conflict: _OnConflict,
    ) -> None:
        """Inserts `rows` with `on_conflict`; under a fence, only while the fence holds."""
        names = (*rows[0],)
        arrays = {name: [row[name] for row in rows] for name in names}
        if self._fence is None:
            await self._driver.fetchval(_plain_put(table, names, on_conflict), arrays)
            return
        statement = _fenced_put(table, names, on_conflict)
        fence = {"fence_run_id": self._fence.run_id, "fence_attempt": self._fence.attempt}
        if not await self._driver.fetchval(statement, arrays | fence):
            raise self._fence.refused()

    async def _execute(self, statement: Executable) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    def _to_tuple(self, row: Mapping[Any, Any]) -> CheckpointTuple:
        checkpoint, metadata = load_checkpoint(
            self.serde, row["type"], row["checkpoint"], row["metadata"]
        )
        thread_id, namespace, parent_id = (
            row["thread_id"],
            row["checkpoint_ns"],
            row["parent_checkpoint_id"],
        )
        return CheckpointTuple(
            config=checkpoint_config(thread_id, namespace, row["checkpoint_id"]),
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=checkpoint_config(thread_id, namespace, parent_id) if parent_id else None,
            pending_writes=self._pending_writes(row),
        )

    def _pending_writes(self, row: Mapping[Any, Any]) -> builtins.list[PendingWrite]:
        if row["w_task_ids"] is None:
            return []
        names = ("w_task_ids", "w_channels", "w_types", "w_blobs")
        columns = zip(*(row[name] for name in names), strict=True)
        return [
            (task, channel, self.serde.loads_typed((type_, blob)))
            for task, channel, type_, blob in columns
        ]


@functools.cache
def _plain_put(table: Table, names: tuple[str, ...], on_conflict: _OnConflict) -> Insert:
    """The unfenced insert, built once like `_fenced_put` so its compilation is cached."""
    source = _unnest(table, names)
    columns = [_from_bind(table, name, source.c[name]) for name in names]
    return on_conflict(pg_insert(table).from_select(names, select(*columns)), names)


@functools.cache
def _fenced_put(table: Table, names: tuple[str, ...], on_conflict: _OnConflict) -> Select[bool]:
    """One statement: lock the run row if the claim holds, insert only then, say which.

    FOR SHARE conflicts with the UPDATE of a takeover (attempt + 1): either the
    takeover waits for this statement, or this statement waits for it and, under
    READ COMMITTED, re-checks the updated row and finds the claim gone. The answer
    is whether the fence held, not whether rows were inserted, so an idempotent
    retry whose rows all hit ON CONFLICT DO NOTHING is not taken for a refusal.
    Built once per table: only bind parameters vary, so SQLAlchemy's compiled cache
    and asyncpg's prepared statements are reused whatever the number of rows.
    """
    claim = owned(bindparam("fence_run_id"), bindparam("fence_attempt"))
    held = select(runs.c.run_id).where(claim).with_for_update(read=True).cte("fence")
    source = _unnest(table, names)
    columns = [_from_bind(table, name, source.c[name]) for name in names]
    # Joined to the fence, the rows exist only while the fence holds.
    rows = select(*columns).select_from(source.join(held, true()))
    written = on_conflict(pg_insert(table).from_select(names, rows), names)
    return select(exists(held.select())).add_cte(written.cte("written"))


def _unnest(table: Table, names: Sequence[str]) -> TableValuedAlias:
    """Rows from one array parameter per column (named after it): `unnest(:a, :b, ...)`."""
    types = [_bind_type(table.c[name]) for name in names]
    arrays = [bindparam(name, type_=ARRAY(type_)) for name, type_ in zip(names, types, strict=True)]
    columns = [column(name, type_) for name, type_ in zip(names, types, strict=True)]
    return func.unnest(*arrays).table_valued(*columns).render_derived(name="source")


def _bind_type(target: Column[Any]) -> TypeEngine[Any]:
    # JSONB columns are sent as JSON text (see _jsonb) and cast in SQL.
    return Text() if _is_json(target) else target.type


def _is_json(target: Column[Any]) -> bool:
    # The tables declare portable JSON (JSONB on Postgres, which is all this saver serves).
    return isinstance(target.type, JSON)


def _from_bind(table: Table, name: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(value, JSONB) if _is_json(table.c[name]) else value


def _tuples_query() -> Select[*tuple[Any, ...]]:
    """Checkpoint rows, each with its pending writes aggregated in the same query."""
    order = (_wr.task_path, _wr.task_id, _wr.idx)  # langgraph's writes_sort_key
    arrays = [
        func.array_agg(aggregate_order_by(_wr[name], *order)).label(f"w_{name}s")
        for name in ("task_id", "channel", "type", "blob")
    ]
    same_checkpoint = [_wr[name] == _cp[name] for name in CHECKPOINT_KEY]
    writes = select(*arrays).where(*same_checkpoint).lateral("pending")
    columns = [
        _cp[name]
        for name in (*CHECKPOINT_KEY, "parent_checkpoint_id", "type", "checkpoint", "metadata")
    ]
    return select(*columns, *writes.c).select_from(checkpoints.join(writes, true()))


_TUPLES = _tuples_query()


@functools.cache
def _listing(given: frozenset[str]) -> Select[*tuple[Any, ...]]:
    """Checkpoint rows newest first, for the parameters `given` (names from `alist`).

    One prebuilt statement per combination (a few dozen at most), so that every listing
    and every latest-checkpoint read goes to the driver compiled once.
    """
    query = _TUPLES.where(
        *(_cp[name] == bindparam(f"p_{name}") for name in CHECKPOINT_KEY if f"p_{name}" in given)
    )
    if "p_filter" in given:
        contains = _cp.metadata.op("@>", return_type=Boolean)
        query = query.where(contains(cast(bindparam("p_filter", type_=Text), JSONB)))
    if "p_before" in given:
        query = query.where(_cp.checkpoint_id < bindparam("p_before"))
    query = query.order_by(_cp.checkpoint_id.desc())
    if "p_limit" in given:
        query = query.limit(bindparam("p_limit", type_=Integer))
    return query


def _upsert_checkpoint(statement: PgInsert, names: Sequence[str]) -> Insert:
    """A checkpoint put again replaces every written column but its key."""
    updates = {name: statement.excluded[name] for name in names if name not in CHECKPOINT_KEY}
    return statement.on_conflict_do_update(index_elements=CHECKPOINT_KEY, set_=updates)


def _upsert_writes(statement: PgInsert, names: Sequence[str]) -> Insert:
    """Regular writes are first-wins; special channels (negative idx) are overwritten."""
    updates = {name: statement.excluded[name] for name in ("channel", "type", "blob", "task_path")}
    return statement.on_conflict_do_update(
        index_elements=WRITE_KEY, set_=updates, where=statement.excluded.idx < 0
    )


def _purge(where: ColumnElement[bool], writes_where: ColumnElement[bool] | None = None) -> Delete:
    """Delete matching checkpoints and their writes in one statement.

    Both halves read the same snapshot, so the writes' subquery still sees the
    checkpoints the CTE deletes.
    """
    if writes_where is None:
        doomed = select(*(_cp[name] for name in CHECKPOINT_KEY)).where(where)
        writes_where = tuple_(*(_wr[name] for name in CHECKPOINT_KEY)).in_(doomed)
    removed = delete(checkpoints).where(where).cte("removed_checkpoints")
    return delete(checkpoint_writes).where(writes_where).add_cte(removed)


def _latest_id() -> ColumnElement[str]:
    """The newest checkpoint_id in the outer row's thread and namespace."""
    newer = checkpoints.alias("newer")
    same_ns = (newer.c.thread_id == _cp.thread_id) & (newer.c.checkpoint_ns == _cp.checkpoint_ns)
    return select(func.max(newer.c.checkpoint_id)).where(same_ns).scalar_subquery()


def _copy(table: Table, source_thread_id: str, target_thread_id: str) -> Insert:
    """Insert-select of a thread's rows under another thread_id; created_at restarts."""
    names = [column.name for column in table.c if column.name != "created_at"]
    target = literal(target_thread_id, Text).label("thread_id")
    rows = select(*(target if name == "thread_id" else table.c[name] for name in names))
    source = rows.where(table.c.thread_id == source_thread_id)
    return pg_insert(table).from_select(names, source).on_conflict_do_nothing()
