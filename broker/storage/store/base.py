"""Items and their embeddings in `store_items`/`store_vectors`, once for both backends.

What a namespace is on disk (labels joined by "."), how filters, prefixes and expiry
read in SQL, and which statements each operation runs are decided here. Each backend
says how time is spelled (`_expiry`), how a JSON path reads (`_at_path`), and how the
sweeper takes its turn (`_sweep_turn`). The policy (validation, TTL defaults,
embeddings) is `broker/memory.py`'s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Delete,
    Select,
    and_,
    bindparam,
    delete,
    false,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.storage import dialect as sql
from broker.storage.tables import store_items, store_vectors

_it = store_items.c
_vec = store_vectors.c

Key = tuple[str, str]  # (prefix, key): an item's address on disk
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


def prefix_of(namespace: Sequence[str]) -> str:
    return ".".join(namespace)


def namespace_of(prefix: str) -> tuple[str, ...]:
    return tuple(prefix.split("."))


@dataclass(frozen=True)
class StoredItem:
    prefix: str
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    ttl_minutes: float | None = None


@dataclass(frozen=True)
class ItemWrite:
    """An upsert: the value, its ttl (None: never expires), and its embeddings
    ({field path: unit vector as float32 bytes}, replacing the item's; None without
    store.index: whatever vectors it has are left alone, and no search reads them)."""

    prefix: str
    key: str
    value: dict[str, Any]
    ttl_minutes: float | None
    vectors: dict[str, bytes] | None = None


@dataclass(frozen=True)
class Condition:
    """One filter condition: the JSON value at `path` compared by `operator` to `value`."""

    path: tuple[str, ...]
    operator: str  # one of OPERATORS
    value: Any


@dataclass(frozen=True)
class Search:
    prefix: str  # "" for the whole store
    conditions: Sequence[Condition] = ()
    limit: int = 10
    offset: int = 0


@dataclass(frozen=True)
class VectorPath:
    """Which semantic search path a store uses, said once at start."""

    in_sql: bool  # pgvector ranks in SQL (`nearest`); else `vectors`, ranked in Python
    said: str  # the start line's words: which path, and how to get pgvector if not


PORTABLE = "the portable path (float32 vectors, cosine ranked in Python over the matching items)"

# One indexed field's unit vector of a matching item: prefix, key, the item's
# updated_at, the vector as float32 bytes (a tuple: a search reads thousands).
Vector = tuple[str, str, datetime, bytes]


class StoreTables(ABC):
    """The store's rows on one engine; every operation one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- what each backend supplies --------------------------------------------------

    @abstractmethod
    def _expiry(self, ttl_minutes: float | None) -> Any:
        """The bound value of `:expires` for a ttl (None: no expiry); see `_expires`."""

    @abstractmethod
    def _expires(self) -> ColumnElement[Any]:
        """`expires_at` from the bind parameter `:expires` (`_expiry`'s value)."""

    @abstractmethod
    def _at_path(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        """The JSON value at `path` in `value`, comparable to `_literal`'s."""

    @abstractmethod
    def _literal(self, value: Any) -> ColumnElement[Any]:
        """A filter's JSON value, comparable to `_at_path`'s."""

    async def has_pgvector(self) -> bool:
        """Whether Postgres could give vectors their own type (said at start)."""
        return False

    async def prepare_vectors(self, dims: int) -> VectorPath:
        """At start, with store.index: the path semantic search takes from now on."""
        return VectorPath(False, f"{PORTABLE}; SQLite has no pgvector")

    async def nearest(
        self, search: Search, query: Sequence[float], count: int
    ) -> list[tuple[Key, float]]:
        """The `count` matching items nearest `query` (a unit vector), skipping
        `search.offset`, with their cosine similarity: only where `prepare_vectors`
        said `in_sql`."""
        raise NotImplementedError("this store ranks in Python (see prepare_vectors)")

    @abstractmethod
    async def _sweep_turn(self, conn: AsyncConnection) -> bool:
        """Whether this process may sweep now (one at a time across processes)."""

    # -- reads -----------------------------------------------------------------------

    async def get(self, keys: Sequence[Key], *, refresh: bool) -> dict[Key, StoredItem]:
        """The live items at `keys`; with `refresh`, their ttl starts again."""
        if not keys:
            return {}
        query = _items().where(tuple_(_it.prefix, _it.key).in_(list(keys)), self._live())
        async with self._single() as conn:
            found = {(r.prefix, r.key): r for r in map(_item, await conn.execute(query))}
            if refresh:
                await self._refresh(conn, found.values())
        return found

    async def search(self, search: Search, *, refresh: bool) -> list[StoredItem]:
        """Matching live items, most recently updated first."""
        query = (
            _items()
            .where(*self._matching(search))
            .order_by(*NEWEST_FIRST)
            .limit(search.limit)
            .offset(search.offset)
        )
        async with self._single() as conn:
            found = [_item(row) for row in await conn.execute(query)]
            if refresh:
                await self._refresh(conn, found)
        return found

    async def vectors(self, search: Search) -> list[Vector]:
        """The field vectors of every matching live item (no limit: the ranker scores
        them all, then reads the items it keeps with `get`)."""
        query = select(*VECTOR_COLUMNS).select_from(WITH_VECTORS).where(*self._matching(search))
        async with self._single() as conn:
            return [(row[0], row[1], row[2], row[3]) for row in await conn.execute(query)]

    async def refresh(self, items: Iterable[StoredItem]) -> None:
        async with self._begin() as conn:
            await self._refresh(conn, items)

    async def prefixes(self, start: str) -> list[str]:
        """Every distinct namespace (as text) holding a live item, under `start` if given."""
        query = select(_it.prefix).distinct().where(self._live()).order_by(_it.prefix)
        if start:
            query = query.where(_at_or_under(start))
        async with self._single() as conn:
            return list((await conn.scalars(query)).all())

    # -- writes ----------------------------------------------------------------------

    async def write(self, puts: Sequence[ItemWrite], deletes: Sequence[Key]) -> None:
        """Upserts and deletes, in one transaction (a key in both: the put wins)."""
        params = [self._put_params(p) for p in puts]
        reindexed = [_key_params((p.prefix, p.key)) for p in puts if p.vectors is not None]
        vectors = [
            self._vector_row(p.prefix, p.key, path, blob)
            for p in puts
            for path, blob in (p.vectors or {}).items()
        ]
        async with self._begin() as conn:
            if deletes:
                await conn.execute(_delete_items(), [_key_params(k) for k in deletes])
            if params:
                await conn.execute(self.upsert(), params)
            if reindexed:
                await conn.execute(delete_vectors(), reindexed)
            if vectors:
                await conn.execute(self._vectors_insert(), vectors)

    async def sweep(self, batch: int) -> int | None:
        """Deletes up to `batch` expired items; None if another process holds the turn."""
        async with self._begin() as conn:
            if not await self._sweep_turn(conn):
                return None
            expired = (
                select(_it.prefix, _it.key)
                .where(_it.expires_at <= sql.now(self.engine.dialect))
                .limit(batch)
            )
            gone = delete(store_items).where(tuple_(_it.prefix, _it.key).in_(expired))
            return (await conn.execute(gone)).rowcount

    # -- helpers ---------------------------------------------------------------------

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _single(self) -> AsyncIterator[AsyncConnection]:
        """Where statements that need no transaction run (reads, a read's ttl refresh):
        a transaction unless the backend can do without."""
        async with self._begin() as conn:
            yield conn

    def _vectors_insert(self) -> Any:
        """The insert of `_vector_row`'s rows."""
        return store_vectors.insert()

    def _vector_row(self, prefix: str, key: str, path: str, blob: bytes) -> dict[str, Any]:
        return {"prefix": prefix, "key": key, "field_path": path, "embedding": blob}

    def _live(self) -> ColumnElement[bool]:
        return or_(_it.expires_at.is_(None), _it.expires_at > sql.now(self.engine.dialect))

    def _matching(self, search: Search) -> list[ColumnElement[bool]]:
        where = [self._live(), *(self._condition(c) for c in search.conditions)]
        if search.prefix:
            where.append(_at_or_under(search.prefix))
        return where

    def _condition(self, condition: Condition) -> ColumnElement[bool]:
        left, right = self._at_path(condition.path), self._literal(condition.value)
        return compare(condition.operator, left, right)

    def upsert(self) -> Any:
        now = sql.now(self.engine.dialect)
        insert = sql.insert(self.engine.dialect, store_items).values(
            prefix=bindparam("b_prefix"),
            key=bindparam("b_key"),
            value=bindparam("b_value", type_=store_items.c.value.type),
            ttl_minutes=bindparam("b_ttl"),
            expires_at=self._expires(),
            created_at=now,
            updated_at=now,
        )
        excluded = insert.excluded
        return insert.on_conflict_do_update(
            index_elements=[_it.prefix, _it.key],
            set_={
                "value": excluded.value,
                "ttl_minutes": excluded.ttl_minutes,
                "expires_at": excluded.expires_at,
                "updated_at": excluded.updated_at,
            },
        )

    def _put_params(self, put: ItemWrite) -> dict[str, Any]:
        return {
            **_key_params((put.prefix, put.key)),
            "b_value": put.value,
            "b_ttl": put.ttl_minutes,
            "expires": self._expiry(put.ttl_minutes),
        }

    async def _refresh(self, conn: AsyncConnection, items: Iterable[StoredItem]) -> None:
        params = [
            {**_key_params((i.prefix, i.key)), "expires": self._expiry(i.ttl_minutes)}
            for i in items
            if i.ttl_minutes is not None
        ]
        if params:
            refreshed = (
                update(store_items)
                .where(_it.prefix == bindparam("b_prefix"), _it.key == bindparam("b_key"))
                .values(expires_at=self._expires())
            )
            await conn.execute(refreshed, params)


ITEM_COLUMNS = (
    _it.prefix,
    _it.key,
    _it.value,
    _it.created_at,
    _it.updated_at,
    _it.ttl_minutes,
)


def _items() -> Select[Any]:
    return select(*ITEM_COLUMNS)


def _item(row: Any) -> StoredItem:
    return StoredItem(
        row.prefix, row.key, row.value, row.created_at, row.updated_at, row.ttl_minutes
    )


def compare(
    operator: str, left: ColumnElement[Any], right: ColumnElement[Any]
) -> ColumnElement[bool]:
    """A filter's operator between the item's JSON value and the filter's."""
    match operator:
        case "$eq":
            return left == right
        case "$ne":
            return left.is_distinct_from(right)
        case "$gt":
            return left > right
        case "$gte":
            return left >= right
        case "$lt":
            return left < right
        case "$lte":
            return left <= right
    return false()  # unreachable: the policy admits only OPERATORS


NEWEST_FIRST = (_it.updated_at.desc(), _it.prefix, _it.key)


def _at_or_under(prefix: str) -> ColumnElement[bool]:
    """The namespace `prefix` and those below it (LIKE 'a.b.%', wildcards escaped)."""
    return or_(_it.prefix == prefix, _it.prefix.startswith(prefix + ".", autoescape=True))


WITH_VECTORS = store_items.join(store_vectors, and_(_vec.prefix == _it.prefix, _vec.key == _it.key))
VECTOR_COLUMNS = (_it.prefix, _it.key, _it.updated_at, _vec.embedding)


def _key_params(key: Key) -> Mapping[str, str]:
    return {"b_prefix": key[0], "b_key": key[1]}


def _delete_items() -> Delete:
    return delete(store_items).where(
        _it.prefix == bindparam("b_prefix"), _it.key == bindparam("b_key")
    )


def delete_vectors() -> Delete:
    return delete(store_vectors).where(
        _vec.prefix == bindparam("b_prefix"), _vec.key == bindparam("b_key")
    )
