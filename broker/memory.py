"""Long-term memory: LangGraph's `BaseStore` over our tables, with the policy on top.

What is checked before anything is stored (namespaces, values, filters), what a ttl
defaults to, and embeddings (computed for a whole batch, before its write transaction
opens) are decided here; `broker/storage/store/` only reads and writes rows. The same
object serves the HTTP API and every graph the worker runs (`runtime.store`,
`get_store()`, a node's `store` parameter).

Semantic search: each indexed field's embedding is kept as unit float32 bytes, and an
item's best field counts, scored by cosine similarity. Where the tables say pgvector
is in use (Postgres with the extension, decided at start), the database ranks; else
the portable path ranks the matching items in Python (a dot product of unit vectors).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import operator
from array import array
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    NOT_PROVIDED,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    NamespacePath,
    NotProvided,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.base.batch import AsyncBatchedBaseStore
from langgraph.store.base.embed import get_text_at_path

from broker.config import IndexSection, StoreSection
from broker.embeddings import load_embeddings
from broker.errors import Invalid
from broker.storage.store.base import (
    OPERATORS,
    Condition,
    ItemWrite,
    Key,
    Search,
    StoredItem,
    StoreTables,
    namespace_of,
    prefix_of,
)

log = logging.getLogger(__name__)

SWEEP_BATCH = 1000  # expired items deleted per transaction
DEFAULT_SWEEP_MINUTES = 5.0


class StoreInvalid(Invalid, ValueError):
    """What a store operation was given is not valid (422 over HTTP; a ValueError in a
    graph, as LangGraph's own stores raise)."""


# -- checks, named by the field they judge ---------------------------------------------


def check_namespace(field: str, namespace: Sequence[Any], *, allow_empty: bool = False) -> None:
    if not namespace and not allow_empty:
        raise StoreInvalid(f"{field}: must not be empty")
    for label in namespace:
        if not isinstance(label, str):
            raise StoreInvalid(f"{field}: labels must be strings, got {type(label).__name__}")
        if not label:
            raise StoreInvalid(f"{field}: labels must not be empty")
        if "." in label:
            raise StoreInvalid(f"{field}: label {label!r} contains '.', which labels may not")


def check_value(field: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise StoreInvalid(f"{field}: must be a JSON object, got {type(value).__name__}")


def conditions(field: str, filter: Mapping[str, Any] | None) -> list[Condition]:
    """A filter as conditions: `{"a.b": 1}` (equality, nested key) or
    `{"score": {"$gt": 4}}`, operators among $eq $ne $gt $gte $lt $lte."""
    found: list[Condition] = []
    for key, want in (filter or {}).items():
        path = tuple(key.split("."))
        if not all(path):
            raise StoreInvalid(f"{field}.{key}: a key's labels must not be empty")
        if isinstance(want, Mapping) and any(str(k).startswith("$") for k in want):
            for op, value in want.items():
                if op not in OPERATORS:
                    raise StoreInvalid(
                        f"{field}.{key}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}"
                    )
                found.append(Condition(path, op, value))
        else:
            found.append(Condition(path, "$eq", want))
    return found


# -- the store ---------------------------------------------------------------------------


class Store(AsyncBatchedBaseStore):
    """The broker's store. Concurrent calls made in one turn of the event loop are run
    as one batch (LangGraph's AsyncBatchedBaseStore, as its Postgres store does): one
    transaction for their writes, one query per kind of read. Each call's input is
    checked before it joins a batch, so one caller's mistake fails no other's. The sync
    API (for sync nodes, which LangGraph runs in threads) runs on the store's loop."""

    supports_ttl = True

    def __init__(self, tables: StoreTables, section: StoreSection, base: Path) -> None:
        super().__init__()  # needs the running loop: the store is built inside it
        self.tables = tables
        self.index: IndexSection | None = section.index
        self.embeddings: Embeddings | None = (
            load_embeddings(section.index.embed, base) if section.index else None
        )
        ttl = section.ttl
        self.ttl_config: TTLConfig | None = (
            TTLConfig(refresh_on_read=ttl.refresh_on_read, default_ttl=ttl.default_ttl)
            if ttl
            else None
        )
        minutes = (ttl.sweep_interval_minutes if ttl else None) or DEFAULT_SWEEP_MINUTES
        self.sweep_seconds = minutes * 60
        self.in_sql = False  # pgvector ranks (chosen at start)

    async def start(self) -> None:
        """Chooses the semantic search path (with store.index configured) and says it."""
        if self.index is None:
            return
        path = await self.tables.prepare_vectors(self.index.dims)
        self.in_sql = path.in_sql
        log.info("store: semantic search uses %s", path.said)

    @property
    def fields(self) -> list[str]:
        return list(self.index.fields or ["$"]) if self.index else []

    # -- LangGraph's entry points --------------------------------------------------

    async def aget(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        _check(GetOp(namespace, key))
        return await super().aget(namespace, key, refresh_ttl=refresh_ttl)

    async def aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        check_namespace("namespace", namespace)
        check_value("value", value)
        await super().aput(namespace, key, value, index, ttl=ttl)

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        _check(SearchOp(namespace_prefix, filter))
        return await super().asearch(
            namespace_prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
        )

    async def alist_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        conditions_ = [
            MatchCondition("prefix", prefix or ()),
            MatchCondition("suffix", suffix or ()),
        ]
        _check(ListNamespacesOp(tuple(conditions_)))
        return await super().alist_namespaces(
            prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset
        )

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Reads see the store as it was before the batch's writes (as LangGraph's
        Postgres store does); writes go in one transaction, embeddings computed first."""
        ops = list(ops)
        for op in ops:
            _check(op)
        results: list[Result] = [None] * len(ops)
        await self._gets(ops, results)
        reads: dict[int, Awaitable[Result]] = {
            i: self._search(op) if isinstance(op, SearchOp) else self._namespaces(op)
            for i, op in enumerate(ops)
            if isinstance(op, SearchOp | ListNamespacesOp)
        }
        # Each on a connection of its own, at once (a batch holds many callers' reads).
        for i, result in zip(reads, await asyncio.gather(*reads.values()), strict=True):
            results[i] = result
        await self._write([op for op in ops if isinstance(op, PutOp)])
        return results

    async def sweep(self) -> int:
        """Deletes expired items in bounded batches, while this process holds the turn."""
        total = 0
        while (deleted := await self.tables.sweep(SWEEP_BATCH)) is not None:
            total += deleted
            if deleted < SWEEP_BATCH:
                break
        return total

    # -- reads ----------------------------------------------------------------------

    async def _gets(self, ops: list[Op], results: list[Result]) -> None:
        for refresh in (False, True):
            wanted = {
                i: (prefix_of(op.namespace), op.key)
                for i, op in enumerate(ops)
                if isinstance(op, GetOp) and op.refresh_ttl == refresh
            }
            if not wanted:
                continue
            found = await self.tables.get(list(set(wanted.values())), refresh=refresh)
            for i, key in wanted.items():
                results[i] = _to_item(found[key]) if key in found else None

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        search = Search(
            prefix_of(op.namespace_prefix),
            conditions("filter", op.filter),
            op.limit,
            op.offset,
        )
        if not op.query or self.embeddings is None:
            found = await self.tables.search(search, refresh=op.refresh_ttl)
            return [_to_search_item(item, None) for item in found]
        query = _unit(await self.embeddings.aembed_query(op.query))
        if self.in_sql:
            nearest = await self.tables.nearest(search, query, op.limit)
            near = await self.tables.get([key for key, _ in nearest], refresh=op.refresh_ttl)
            return [_to_search_item(near[k], score) for k, score in nearest if k in near]
        best: dict[Key, tuple[float, datetime]] = {}  # an item's best field counts
        for prefix, key, updated_at, embedding in await self.tables.vectors(search):
            score = _dot(query, embedding)
            if (prefix, key) not in best or score > best[(prefix, key)][0]:
                best[(prefix, key)] = (score, updated_at)
        # Best first; equal scores: the newest first.
        ranked = heapq.nlargest(op.offset + op.limit, best, key=best.__getitem__)
        kept = ranked[op.offset :]
        items = await self.tables.get(kept, refresh=op.refresh_ttl)
        return [_to_search_item(items[k], best[k][0]) for k in kept if k in items]

    async def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions_ = op.match_conditions or ()
        namespaces = map(namespace_of, await self.tables.prefixes(_literal_start(conditions_)))
        found = [ns for ns in namespaces if all(_matches(ns, c) for c in conditions_)]
        if op.max_depth is not None:
            found = [namespace[: op.max_depth] for namespace in found]
        unique = sorted(set(found))
        return unique[op.offset : op.offset + op.limit]

    # -- writes ---------------------------------------------------------------------

    async def _write(self, puts: list[PutOp]) -> None:
        latest: dict[Key, PutOp] = {}  # a key put twice in one batch: the last put wins
        for op in puts:
            latest[(prefix_of(op.namespace), op.key)] = op
        if not latest:
            return
        deletes = [key for key, op in latest.items() if op.value is None]
        writes = [op for op in latest.values() if op.value is not None]
        vectors = await self._embed(writes)
        await self.tables.write(
            [
                ItemWrite(prefix_of(op.namespace), op.key, dict(op.value or {}), op.ttl, v)
                for op, v in zip(writes, vectors, strict=True)
            ],
            deletes,
        )

    async def _embed(self, puts: list[PutOp]) -> list[dict[str, bytes] | None]:
        """Each put's field vectors, from one call to the embeddings for the whole batch:
        None without store.index (vectors are left alone), {} for an item not indexed."""
        if self.embeddings is None:
            return [None] * len(puts)
        texts: list[tuple[int, str, str]] = []  # (put, field path, text)
        for i, op in enumerate(puts):
            if op.index is False:
                continue
            for path in self.fields if op.index is None else op.index:
                for n, text in enumerate(get_text_at_path(op.value, path)):
                    texts.append((i, path if n == 0 else f"{path}.{n}", text))
        vectors: list[dict[str, bytes] | None] = [{} for _ in puts]
        if not texts:
            return vectors
        embedded = await self.embeddings.aembed_documents([text for _, _, text in texts])
        for (i, path, _), vector in zip(texts, embedded, strict=True):
            self._check_dims(vector)
            vectors[i] = {**(vectors[i] or {}), path: _unit(vector).tobytes()}
        return vectors

    def _check_dims(self, vector: Sequence[float]) -> None:
        assert self.index is not None
        if len(vector) != self.index.dims:
            raise ValueError(
                f"store.index.embed returned a vector of {len(vector)} dimensions; "
                f"store.index.dims says {self.index.dims}"
            )


def _check(op: Op) -> None:
    if isinstance(op, PutOp):
        check_namespace("namespace", op.namespace)
        if op.value is not None:
            check_value("value", op.value)
    elif isinstance(op, GetOp):
        check_namespace("namespace", op.namespace)
    elif isinstance(op, SearchOp):
        check_namespace("namespace_prefix", op.namespace_prefix, allow_empty=True)
        conditions("filter", op.filter)
    elif isinstance(op, ListNamespacesOp):
        for condition in op.match_conditions or ():
            labels = [label for label in condition.path if label != "*"]
            check_namespace(condition.match_type, labels, allow_empty=True)


def _literal_start(conditions_: Sequence[MatchCondition]) -> str:
    """The leading labels of a prefix condition before any wildcard: narrowed in SQL."""
    for condition in conditions_:
        if condition.match_type == "prefix":
            labels = []
            for label in condition.path:
                if label == "*":
                    break
                labels.append(label)
            return prefix_of(labels)
    return ""


def _matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if not path:
        return True
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path) :]
    return all(want in ("*", got) for want, got in zip(path, part, strict=True))


def _unit(vector: Sequence[float]) -> array[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return array("f", (x / norm for x in vector))


def _dot(query: array[float], blob: bytes) -> float:
    return float(sum(map(operator.mul, query, memoryview(blob).cast("f"))))


def _to_item(stored: StoredItem) -> Item:
    return Item(
        value=stored.value,
        key=stored.key,
        namespace=namespace_of(stored.prefix),
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def _to_search_item(stored: StoredItem, score: float | None) -> SearchItem:
    return SearchItem(
        namespace=namespace_of(stored.prefix),
        key=stored.key,
        value=stored.value,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        score=score,
    )
