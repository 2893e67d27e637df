"""The checkpointer on Postgres: prebuilt statements on the driver, one per operation.

Writes and reads by key go to asyncpg directly (see broker.storage.driver), compiled
once; a fenced put checks its claim in the same statement as the write (`FOR SHARE`).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Integer,
    Select,
    Table,
    TableValuedAlias,
    Text,
    bindparam,
    cast,
    column,
    exists,
    func,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.types import TypeEngine

from broker import jsonable
from broker.storage.checkpoints.async_saver import Fence
from broker.storage.checkpoints.base import Checkpointer, Listing, StoredWrite
from broker.storage.checkpoints.rows import CHECKPOINT_KEY
from broker.storage.checkpoints.statements import on_conflict
from broker.storage.driver import Driver
from broker.storage.runs import owned
from broker.storage.tables import checkpoint_writes, checkpoints, runs

_cp = checkpoints.c
_wr = checkpoint_writes.c


class PostgresCheckpointer(Checkpointer):
    """The checkpoint tables on Postgres, each operation a single statement."""

    def __init__(self, engine: AsyncEngine, *, serde: SerializerProtocol | None = None) -> None:
        # Every operation is a single statement, so autocommit spares the
        # BEGIN and COMMIT round trips without giving up atomicity.
        super().__init__(engine.execution_options(isolation_level="AUTOCOMMIT"), serde=serde)
        # The driver autocommits outside a transaction by itself: it takes connections
        # from the plain engine, sparing the isolation level's set-and-reset on checkout.
        self._driver = Driver(engine)

    async def _fetch(
        self, listing: Listing
    ) -> builtins.list[tuple[Mapping[str, Any], builtins.list[StoredWrite]]]:
        """On the driver: a prebuilt query per combination of conditions."""
        params: dict[str, Any] = {f"p_{name}": value for name, value in listing.key.items()}
        if listing.filter is not None:
            params["p_filter"] = jsonable.dumps(listing.filter).decode()
        if listing.before is not None:
            params["p_before"] = listing.before
        if listing.limit is not None:
            params["p_limit"] = listing.limit
        rows = await self._driver.fetch(_listing(frozenset(params)), params)
        return [(row, _pending_writes(row)) for row in rows]

    async def _upsert(
        self, table: Table, rows: builtins.list[dict[str, Any]], fence: Fence | None
    ) -> bool:
        names = (*rows[0],)
        arrays = {name: [row[name] for row in rows] for name in names}
        if fence is None:
            await self._driver.fetchval(_plain_put(table, names), arrays)
            return True
        params = arrays | {"fence_run_id": fence.run_id, "fence_attempt": fence.attempt}
        return bool(await self._driver.fetchval(_fenced_put(table, names), params))

    async def _atomically(self, steps: Sequence[UpdateBase]) -> None:
        """One statement: the last step, with the others as its CTEs (one snapshot)."""
        *before, last = steps
        ctes = [step.cte(f"step_{number}") for number, step in enumerate(before)]
        async with self._engine.begin() as conn:
            await conn.execute(last.add_cte(*ctes))


def _pending_writes(row: Mapping[str, Any]) -> builtins.list[StoredWrite]:
    if row["w_task_ids"] is None:
        return []
    names = ("w_task_ids", "w_channels", "w_types", "w_blobs")
    return [*zip(*(row[name] for name in names), strict=True)]


@functools.cache
def _plain_put(table: Table, names: tuple[str, ...]) -> Insert:
    """The unfenced insert, built once like `_fenced_put` so its compilation is cached."""
    source = _unnest(table, names)
    columns = [_from_bind(table, name, source.c[name]) for name in names]
    return on_conflict(pg_insert(table).from_select(names, select(*columns)), names)


@functools.cache
def _fenced_put(table: Table, names: tuple[str, ...]) -> Select[bool]:
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
