"""The store's tables on Postgres: time in the database, JSONB paths, an advisory lock.

The operations every graph and client makes most (a get, a put without vectors) are
prebuilt statements on the pooled asyncpg connection itself (broker.storage.driver),
one round trip each whatever the batch: rows come as arrays (`unnest`).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Integer,
    Interval,
    LargeBinary,
    Select,
    TableValuedAlias,
    Text,
    and_,
    bindparam,
    cast,
    column,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from broker import jsonable
from broker.storage.driver import Driver, compile_once
from broker.storage.store.base import (
    ITEM_COLUMNS,
    NEWEST_FIRST,
    PORTABLE,
    VECTOR_COLUMNS,
    WITH_VECTORS,
    ItemWrite,
    Key,
    Search,
    StoredItem,
    StoreTables,
    Vector,
    VectorPath,
    compare,
)
from broker.storage.store.pgvector import (
    AVAILABLE,
    HOW_TO_ENABLE,
    VEC,
    VECTORS,
    as_text,
    prepare,
    vec_of,
)
from broker.storage.tables import store_items, store_vectors

_it = store_items.c
_vec = store_vectors.c

_SWEEPER_TURN = text("SELECT pg_try_advisory_xact_lock(hashtext('langgraph-broker:store-sweeper'))")


class PostgresStoreTables(StoreTables):
    """Gets, puts and searches are prebuilt statements on the driver (one round trip);
    other reads autocommit through SQLAlchemy (no BEGIN and COMMIT around them)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._driver = Driver(engine)
        self._pgvector = False  # set at start by prepare_vectors

    @asynccontextmanager
    async def _single(self) -> AsyncIterator[AsyncConnection]:
        async with self._autocommit.connect() as conn:
            yield conn

    async def get(self, keys: Sequence[Key], *, refresh: bool) -> dict[Key, StoredItem]:
        if not keys:
            return {}
        prefixes, names = zip(*keys, strict=True)
        params = {"w_prefixes": list(prefixes), "w_keys": list(names), "w_refresh": refresh}
        rows = await self._driver.fetch(_get_statement(), params)
        return {(row["prefix"], row["key"]): StoredItem(**row) for row in rows}

    async def search(self, search: Search, *, refresh: bool) -> list[StoredItem]:
        """A prebuilt statement per shape of search (prefix or not, the operators)."""
        params = _search_params(search) | {"s_limit": search.limit, "s_offset": search.offset}
        rows = await self._driver.fetch(_search_statement(_shape(search)), params)
        found = [StoredItem(**row) for row in rows]
        if refresh:
            await self.refresh(found)
        return found

    async def vectors(self, search: Search) -> list[Vector]:
        """asyncpg's own records: thousands of rows, and these columns need no processing
        (aware datetimes and bytes as they come)."""
        async with self._driver.connect() as conn:
            compiled = compile_once(_vectors_statement(_shape(search)), conn.dialect)
            records = await conn.raw.fetch(
                compiled.sql, *compiled.arguments(_search_params(search))
            )
        return [(r[0], r[1], r[2], r[3]) for r in records]

    async def write(self, puts: Sequence[ItemWrite], deletes: Sequence[Key]) -> None:
        """On the driver: one statement (the upsert; with store.index, the old vectors
        deleted in its CTE), and the new vectors in the same transaction."""
        if deletes:  # a delete (rarer: the SDK's delete_item) goes the general way
            await super().write(puts, deletes)
            return
        reindex = any(p.vectors is not None for p in puts)
        vectors = [(p.prefix, p.key, f, v) for p in puts for f, v in (p.vectors or {}).items()]
        params = {
            "w_prefixes": [p.prefix for p in puts],
            "w_keys": [p.key for p in puts],
            "w_values": [jsonable.dumps(p.value).decode() for p in puts],
            "w_ttls": [p.ttl_minutes for p in puts],
        }
        async with self._driver.connect() as conn:
            if not vectors:
                await conn.execute(_put_statement(reindex), params)
                return
            prefixes, keys, fields, blobs = (list(column) for column in zip(*vectors, strict=True))
            rows = {"v_prefixes": prefixes, "v_keys": keys, "v_fields": fields, "v_blobs": blobs}
            if self._pgvector:
                rows["v_vecs"] = [as_text(blob) for blob in blobs]
            async with conn.transaction():
                await conn.execute(_put_statement(reindex), params)
                await conn.execute(_vectors_insert(self._pgvector), rows)

    async def has_pgvector(self) -> bool:
        """Whether the `vector` extension is available on this server (installed or not)."""
        async with self.engine.connect() as conn:
            return (await conn.execute(AVAILABLE)).first() is not None  # a row: available

    async def prepare_vectors(self, dims: int) -> VectorPath:
        """pgvector when the server has it (created if not yet, with the column and
        index); the portable path otherwise, or if any of that fails."""
        if not await self.has_pgvector():
            return VectorPath(False, f"{PORTABLE}; pgvector is not available: {HOW_TO_ENABLE}")
        try:
            async with self.engine.begin() as conn:
                refused = await prepare(conn, dims)
        except Exception as exc:  # e.g. CREATE EXTENSION needs a privileged role
            refused = f"setting it up failed ({type(exc).__name__}: {exc})"
        if refused is not None:
            return VectorPath(False, f"{PORTABLE}; pgvector is available but unused: {refused}")
        self._pgvector = True
        return VectorPath(
            True, f"pgvector (store_vectors.vec vector({dims}), HNSW cosine index, ranked in SQL)"
        )

    async def nearest(
        self, search: Search, query: Sequence[float], count: int
    ) -> list[tuple[Key, float]]:
        params = _search_params(search) | {
            "q_vec": as_text(query),
            "s_limit": count,
            "s_offset": search.offset,
        }
        rows = await self._driver.fetch(nearest_statement(_shape(search)), params)
        return [((row["prefix"], row["key"]), float(row["score"])) for row in rows]

    def _vectors_insert(self) -> Any:
        if not self._pgvector:
            return super()._vectors_insert()
        return VECTORS.insert().values(vec=vec_of(bindparam("b_vec", type_=Text())))

    def _vector_row(self, prefix: str, key: str, path: str, blob: bytes) -> dict[str, Any]:
        row = super()._vector_row(prefix, key, path, blob)
        return row | {"b_vec": as_text(blob)} if self._pgvector else row

    def _expiry(self, ttl_minutes: float | None) -> timedelta | None:
        return None if ttl_minutes is None else timedelta(minutes=ttl_minutes)

    def _expires(self) -> ColumnElement[Any]:
        # now() + NULL is NULL: an item without a ttl never expires.
        return func.now() + bindparam("expires", type_=Interval())

    def _at_path(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        return store_items.c.value.op("#>", return_type=JSONB)(literal(list(path), ARRAY(Text)))

    def _literal(self, value: Any) -> ColumnElement[Any]:
        return cast(literal(jsonable.dumps(value).decode(), Text), JSONB)

    async def _sweep_turn(self, conn: AsyncConnection) -> bool:
        return bool((await conn.execute(_SWEEPER_TURN)).scalar_one())


def _minutes(amount: ColumnElement[Any]) -> ColumnElement[Any]:
    """An interval of `amount` minutes (NULL for NULL), as seconds: make_interval's
    minutes are whole, its seconds fractional."""
    zero: ColumnElement[int] = literal_column("0")
    seconds = amount * literal_column("60.0")
    return func.make_interval(zero, zero, zero, zero, zero, zero, seconds, type_=Interval())


_LIVE = or_(_it.expires_at.is_(None), _it.expires_at > func.now())


def _wanted() -> TableValuedAlias:
    """(prefix, key) rows from the array parameters `w_prefixes`, `w_keys`."""
    return (
        func.unnest(
            bindparam("w_prefixes", type_=ARRAY(Text())), bindparam("w_keys", type_=ARRAY(Text()))
        )
        .table_valued(column("prefix", Text()), column("key", Text()))
        .render_derived(name="wanted")
    )


@functools.cache
def _get_statement() -> Select[Any]:
    """The live items at the wanted keys; with `w_refresh`, their ttl restarted (a CTE)."""
    wanted = _wanted()
    same = and_(_it.prefix == wanted.c.prefix, _it.key == wanted.c.key)
    picked = select(*ITEM_COLUMNS).select_from(store_items.join(wanted, same)).where(_LIVE)
    found = picked.cte("found")
    refreshed = (
        update(store_items)
        .where(
            bindparam("w_refresh", type_=Boolean()),
            _it.ttl_minutes.is_not(None),
            tuple_(_it.prefix, _it.key).in_(select(found.c.prefix, found.c.key)),
        )
        .values(expires_at=func.now() + _minutes(_it.ttl_minutes))
        .cte("refreshed")
    )
    return select(*found.c).add_cte(refreshed)


@functools.cache
def _put_statement(reindex: bool) -> Insert:
    """The upsert of rows given as arrays; with `reindex`, the items' old vectors
    deleted in a CTE."""
    source = (
        func.unnest(
            bindparam("w_prefixes", type_=ARRAY(Text())),
            bindparam("w_keys", type_=ARRAY(Text())),
            bindparam("w_values", type_=ARRAY(Text())),
            bindparam("w_ttls", type_=ARRAY(Float())),
        )
        .table_valued(
            column("prefix", Text()),
            column("key", Text()),
            column("value", Text()),
            column("ttl", Float()),
        )
        .render_derived(name="source")
    )
    now = func.now()
    rows = select(
        source.c.prefix,
        source.c.key,
        cast(source.c.value, JSONB),
        source.c.ttl,
        now + _minutes(source.c.ttl),  # NULL without a ttl
        now,
        now,
    )
    names = ["prefix", "key", "value", "ttl_minutes", "expires_at", "created_at", "updated_at"]
    insert = pg_insert(store_items).from_select(names, rows)
    excluded = insert.excluded
    upsert = insert.on_conflict_do_update(
        index_elements=[_it.prefix, _it.key],
        set_={
            "value": excluded.value,
            "ttl_minutes": excluded.ttl_minutes,
            "expires_at": excluded.expires_at,
            "updated_at": excluded.updated_at,
        },
    )
    if not reindex:
        return upsert
    dropped = delete(store_vectors).where(
        tuple_(_vec.prefix, _vec.key).in_(select(source.c.prefix, source.c.key))
    )
    return upsert.add_cte(dropped.cte("dropped"))


@functools.cache
def _vectors_insert(pgvector: bool) -> Insert:
    """Vectors given as arrays (`v_prefixes`, `v_keys`, `v_fields`, `v_blobs`; with
    pgvector, `v_vecs` too: the same vectors as text, for the `vec` column)."""
    arrays: list[ColumnElement[Any]] = [
        bindparam("v_prefixes", type_=ARRAY(Text())),
        bindparam("v_keys", type_=ARRAY(Text())),
        bindparam("v_fields", type_=ARRAY(Text())),
        bindparam("v_blobs", type_=ARRAY(LargeBinary())),
    ]
    columns: list[ColumnElement[Any]] = [
        column("prefix", Text()),
        column("key", Text()),
        column("field_path", Text()),
        column("embedding", LargeBinary()),
    ]
    if pgvector:
        arrays.append(bindparam("v_vecs", type_=ARRAY(Text())))
        columns.append(column("vec", Text()))
    source = func.unnest(*arrays).table_valued(*columns).render_derived(name="source")
    names = ["prefix", "key", "field_path", "embedding"]
    if not pgvector:
        return pg_insert(store_vectors).from_select(names, select(*source.c))
    rows = select(*source.c[:4], vec_of(source.c.vec))
    return pg_insert(VECTORS).from_select([*names, "vec"], rows)


def _like_under(prefix: str) -> str:
    """LIKE's pattern for the namespaces below `prefix` (its wildcards escaped)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ".%"


Shape = tuple[bool, tuple[str, ...]]  # a prefix or not; the conditions' operators


def _shape(search: Search) -> Shape:
    return bool(search.prefix), tuple(c.operator for c in search.conditions)


def _search_params(search: Search) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if search.prefix:
        params["s_prefix"], params["s_under"] = search.prefix, _like_under(search.prefix)
    for n, condition in enumerate(search.conditions):
        params[f"s_path{n}"] = list(condition.path)
        params[f"s_value{n}"] = jsonable.dumps(condition.value).decode()
    return params


@functools.cache
def _search_statement(shape: Shape) -> Select[Any]:
    """Live items under `s_prefix` (if given) passing each condition, newest first."""
    return (
        select(*ITEM_COLUMNS)
        .where(*_matching(shape))
        .order_by(*NEWEST_FIRST)
        .limit(bindparam("s_limit", type_=Integer()))
        .offset(bindparam("s_offset", type_=Integer()))
    )


@functools.cache
def _vectors_statement(shape: Shape) -> Select[Any]:
    """The vectors of the live items a search of `shape` matches."""
    return select(*VECTOR_COLUMNS).select_from(WITH_VECTORS).where(*_matching(shape))


@functools.cache
def nearest_statement(shape: Shape) -> Select[Any]:
    """The matching items by their best field's cosine distance to `q_vec` (nearest
    first; equal distances: newest first, as the portable ranker), with
    `1 - distance` as the score: the cosine similarity the portable path gives (both
    sides are unit vectors)."""
    query = vec_of(bindparam("q_vec", type_=Text()))
    distance = func.min(VEC.op("<=>", return_type=Float())(query))
    return (
        select(_it.prefix, _it.key, (literal_column("1.0") - distance).label("score"))
        .select_from(WITH_VECTORS)
        .where(*_matching(shape), VEC.is_not(None))
        .group_by(_it.prefix, _it.key, _it.updated_at)
        .order_by(distance, _it.updated_at.desc(), _it.prefix, _it.key)
        .limit(bindparam("s_limit", type_=Integer()))
        .offset(bindparam("s_offset", type_=Integer()))
    )


def _matching(shape: Shape) -> list[ColumnElement[bool]]:
    has_prefix, operators = shape
    where = [_LIVE]
    if has_prefix:
        under = _it.prefix.like(bindparam("s_under", type_=Text()), escape="\\")
        where.append(or_(_it.prefix == bindparam("s_prefix", type_=Text()), under))
    for n, operator in enumerate(operators):
        path = bindparam(f"s_path{n}", type_=ARRAY(Text()))
        left = _it.value.op("#>", return_type=JSONB)(path)
        where.append(compare(operator, left, cast(bindparam(f"s_value{n}", type_=Text()), JSONB)))
    return where
