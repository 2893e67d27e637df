"""The store's contract, on both backends: LangGraph's BaseStore semantics (get, put,
delete, search with filters and pagination, list_namespaces), semantic search by a
deterministic fake embedding, TTL and the sweeper, and the sync API from a thread."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.config import IndexSection, StoreSection, TTLSection
from broker.errors import NotFound
from broker.memory import Store, StoreInvalid
from broker.storage.dialect import is_postgres
from broker.storage.store import open_store_tables
from broker.storage.tables import store_items, store_vectors
from broker.store_access import NotAuthorized, StoreAccess

GRAPHS = Path(__file__).parents[1] / "graphs"
INDEX = IndexSection(embed="./embeddings.py:embed", dims=64)


def _store(engine: AsyncEngine, **section: Any) -> Store:
    return Store(open_store_tables(engine), StoreSection(**section), GRAPHS)


@pytest.fixture
async def store(either_engine: AsyncEngine) -> Store:
    return _store(either_engine)


@pytest.fixture
async def indexed(either_engine: AsyncEngine) -> Store:
    """Started: on a Postgres with pgvector (not CI's) the semantic tests rank in SQL."""
    store = _store(either_engine, index=INDEX)
    await store.start()
    return store


@pytest.fixture
def root() -> str:
    """A root label of this test's own: the Postgres database is the session's."""
    return f"t{uuid.uuid4().hex[:10]}"


async def test_put_get_update_delete(store: Store, root: str) -> None:
    assert await store.aget((root, "a"), "k") is None
    await store.aput((root, "a"), "k", {"n": 1, "nested": {"s": "x"}})
    first = await store.aget((root, "a"), "k")
    assert first is not None
    assert (first.namespace, first.key, first.value) == (
        (root, "a"),
        "k",
        {"n": 1, "nested": {"s": "x"}},
    )
    await asyncio.sleep(0.01)
    await store.aput((root, "a"), "k", {"n": 2})
    second = await store.aget((root, "a"), "k")
    assert second is not None and second.value == {"n": 2}
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    await store.adelete((root, "a"), "k")
    assert await store.aget((root, "a"), "k") is None


async def test_values_are_readable_json(store: Store, root: str) -> None:
    await store.aput((root,), "k", {"who": "ada", "tags": ["x"]})
    async with store.tables.engine.connect() as conn:
        value = (
            await conn.execute(select(store_items.c.value).where(store_items.c.prefix == root))
        ).scalar_one()
    assert value == {"who": "ada", "tags": ["x"]}


async def test_batch_reads_see_the_store_before_its_writes(store: Store, root: str) -> None:
    await store.aput((root,), "old", {"v": 0})
    results: list[Any] = await store.abatch(
        [
            PutOp((root,), "new", {"v": 1}),
            GetOp((root,), "old"),
            GetOp((root,), "new"),
            PutOp((root,), "old", None),
            SearchOp((root,)),
            ListNamespacesOp((MatchCondition("prefix", (root,)),)),
        ]
    )
    assert results[0] is None and results[3] is None
    assert results[1] is not None and results[1].value == {"v": 0}
    assert results[2] is None
    assert [item.key for item in results[4]] == ["old"]
    assert results[5] == [(root,)]
    assert await store.aget((root,), "old") is None
    assert (await store.aget((root,), "new")) is not None


async def test_search_by_prefix_is_by_whole_labels(store: Store, root: str) -> None:
    for namespace in [(root, "a"), (root, "a", "b"), (root, "ab"), (root, "a_"), (root, "a%")]:
        await store.aput(namespace, "k", {"ns": list(namespace)})
    under_a = await store.asearch((root, "a"))
    assert sorted(item.namespace for item in under_a) == [(root, "a"), (root, "a", "b")]
    assert [i.namespace for i in await store.asearch((root, "a_"))] == [(root, "a_")]
    assert [i.namespace for i in await store.asearch((root, "a%"))] == [(root, "a%")]
    assert len(await store.asearch((root,), limit=100)) == 5


async def test_search_newest_first_with_limit_and_offset(store: Store, root: str) -> None:
    for n in range(5):
        await store.aput((root,), f"k{n}", {"n": n})
        await asyncio.sleep(0.002)
    assert [i.key for i in await store.asearch((root,), limit=2)] == ["k4", "k3"]
    assert [i.key for i in await store.asearch((root,), limit=2, offset=2)] == ["k2", "k1"]
    assert [i.key for i in await store.asearch((root,), limit=10, offset=4)] == ["k0"]


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"color": "red"}, {"a", "c"}),
        ({"color": {"$eq": "red"}}, {"a", "c"}),
        ({"color": {"$ne": "red"}}, {"b", "d"}),
        ({"score": {"$gt": 4}}, {"b", "c"}),
        ({"score": {"$gte": 4}}, {"a", "b", "c"}),
        ({"score": {"$lt": 4}}, {"d"}),
        ({"score": {"$lte": 4.0}}, {"a", "d"}),
        ({"score": {"$gt": 3, "$lt": 6}}, {"a", "b"}),
        ({"color": "red", "score": {"$gt": 4}}, {"c"}),
        ({"meta.level": 2}, {"b"}),
        ({"meta": {"level": 1}}, {"a"}),
        ({"active": True}, {"a", "b"}),
        ({"tags": ["x", "y"]}, {"c"}),
        ({"missing": "anything"}, set()),
    ],
)
async def test_filters(store: Store, root: str, filter: dict[str, Any], expected: set[str]) -> None:
    items = {
        "a": {"color": "red", "score": 4, "meta": {"level": 1}, "active": True},
        "b": {"color": "blue", "score": 5.5, "meta": {"level": 2}, "active": True},
        "c": {"color": "red", "score": 9, "tags": ["x", "y"], "active": False},
        "d": {"color": "green", "score": 1},
    }
    await store.abatch([PutOp((root,), key, value) for key, value in items.items()])
    found = await store.asearch((root,), filter=filter, limit=10)
    assert {item.key for item in found} == expected


async def test_list_namespaces(store: Store, root: str) -> None:
    spaces = [
        (root, "users", "ada", "prefs"),
        (root, "users", "bob", "prefs"),
        (root, "users", "bob", "notes"),
        (root, "docs", "v1"),
    ]
    await store.abatch([PutOp(ns, "k", {"x": 1}) for ns in spaces])
    mine = await store.alist_namespaces(prefix=(root,))
    assert mine == sorted(spaces)
    assert await store.alist_namespaces(prefix=(root, "users"), suffix=("prefs",)) == [
        (root, "users", "ada", "prefs"),
        (root, "users", "bob", "prefs"),
    ]
    assert await store.alist_namespaces(prefix=(root, "*", "bob")) == [
        (root, "users", "bob", "notes"),
        (root, "users", "bob", "prefs"),
    ]
    assert await store.alist_namespaces(prefix=(root,), max_depth=2) == [
        (root, "docs"),
        (root, "users"),
    ]
    assert await store.alist_namespaces(prefix=(root,), limit=1, offset=1) == [
        (root, "users", "ada", "prefs")
    ]


@pytest.mark.parametrize(
    ("op", "field"),
    [
        (PutOp((), "k", {"x": 1}), "namespace: must not be empty"),
        (PutOp(("a.b",), "k", {"x": 1}), "namespace: label 'a.b' contains '.'"),
        (PutOp(("a", ""), "k", {"x": 1}), "namespace: labels must not be empty"),
        (PutOp(("a",), "k", [1, 2]), "value: must be a JSON object"),  # type: ignore[arg-type]
        (GetOp(("x.y",), "k"), "namespace: label"),
        (SearchOp(("a",), filter={"n": {"$regex": "x"}}), "filter.n: unknown operator '$regex'"),
        (ListNamespacesOp((MatchCondition("prefix", ("a.b",)),)), "prefix: label"),
    ],
)
async def test_refusals_name_the_field(store: Store, op: Any, field: str) -> None:
    with pytest.raises(StoreInvalid, match="^" + field.replace("$", r"\$").replace("(", r"\(")):
        await store.abatch([op])
    assert issubclass(StoreInvalid, ValueError)  # what LangGraph's stores raise to a graph


async def test_semantic_search_ranks_by_cosine(indexed: Store, root: str) -> None:
    await indexed.abatch(
        [
            PutOp((root, "pets"), "cat", {"text": "cats purr and sleep all day"}),
            PutOp((root, "pets"), "dog", {"text": "dogs bark at the mail carrier"}),
            PutOp((root, "food"), "soup", {"text": "tomato soup with basil"}),
            PutOp((root, "pets"), "hidden", {"text": "cats purr"}, index=False),
        ]
    )
    found = await indexed.asearch((root,), query="do cats purr", limit=3)
    assert len(found) == 3
    assert found[0].key == "cat" and found[0].score is not None
    scores = [item.score or 0.0 for item in found]
    assert scores == sorted(scores, reverse=True)
    assert "hidden" not in {item.key for item in found}
    pets_only = await indexed.asearch((root, "pets"), query="tomato soup", limit=5)
    assert {item.key for item in pets_only} == {"cat", "dog"}
    filtered = await indexed.asearch((root,), query="cats", filter={"text": {"$ne": "x"}}, limit=1)
    assert [item.key for item in filtered] == ["cat"]
    listing = await indexed.asearch((root, "pets"), limit=10)  # no query: a listing
    assert {item.key for item in listing} == {"cat", "dog", "hidden"}
    assert all(item.score is None for item in listing)


async def test_index_fields_choose_what_is_embedded(either_engine: AsyncEngine, root: str) -> None:
    store = _store(
        either_engine, index=IndexSection(embed="./embeddings.py:aembed", dims=64, fields=["title"])
    )
    await store.start()
    await store.aput((root,), "a", {"title": "rust compilers", "body": "gardening tips"})
    await store.aput((root,), "b", {"title": "gardening tips", "body": "rust compilers"})
    await store.aput((root,), "c", {"title": "x", "body": "compilers"}, index=["body"])
    found = await store.asearch((root,), query="rust compilers", limit=3)
    assert [item.key for item in found][:2] == ["a", "c"]
    async with either_engine.connect() as conn:
        fields = (
            await conn.execute(
                select(store_vectors.c.key, store_vectors.c.field_path).where(
                    store_vectors.c.prefix == root
                )
            )
        ).all()
    assert sorted(fields) == [("a", "title"), ("b", "title"), ("c", "body")]
    await store.aput((root,), "a", {"title": "unindexed now"}, index=False)
    assert "a" not in {i.key for i in await store.asearch((root,), query="rust", limit=5)}


async def test_expired_items_are_never_returned_and_swept(store: Store, root: str) -> None:
    await store.aput((root,), "brief", {"x": 1}, ttl=0.001)  # 60 ms
    await store.aput((root,), "stays", {"x": 2})
    for _ in range(100):  # reads that do not refresh it (a refreshing one would)
        if await store.aget((root,), "brief", refresh_ttl=False) is None:
            break
        await asyncio.sleep(0.02)
    assert await store.aget((root,), "brief") is None
    assert [i.key for i in await store.asearch((root,))] == ["stays"]
    assert await store.alist_namespaces(prefix=(root,)) == [(root,)]
    assert await _rows(store, root) == 2  # still on disk, until swept
    assert await store.sweep() >= 1
    assert await _rows(store, root) == 1


async def test_reads_refresh_the_ttl(either_engine: AsyncEngine, root: str) -> None:
    store = _store(either_engine, ttl=TTLSection(default_ttl=10, refresh_on_read=True))
    await store.aput((root,), "k", {"x": 1})  # default_ttl applies
    first = await _expires(store, root)
    assert first is not None
    await asyncio.sleep(0.01)
    await store.aget((root,), "k", refresh_ttl=False)
    assert await _expires(store, root) == first
    await store.aget((root,), "k")  # refresh_on_read
    second = await _expires(store, root)
    assert second is not None and second > first
    await asyncio.sleep(0.01)
    await store.asearch((root,))
    assert (third := await _expires(store, root)) is not None and third > second
    await store.aput((root,), "k", {"x": 2}, ttl=None)  # no expiry at all
    assert await _expires(store, root) is None


async def test_sync_api_from_a_thread(store: Store, root: str) -> None:
    def work() -> Any:
        store.put((root,), "k", {"from": "thread"})
        return store.get((root,), "k")

    item = await asyncio.to_thread(work)
    assert item is not None and item.value == {"from": "thread"}
    with pytest.raises(asyncio.InvalidStateError, match="asynchronous interface"):
        store.get((root,), "k")  # on the loop itself it would deadlock: refused


async def test_one_sweeper_at_a_time_on_postgres(store: Store, root: str) -> None:
    engine = store.tables.engine
    if not is_postgres(engine.dialect):
        return  # SQLite: one process, `broker dev`
    await store.aput((root,), "k", {"x": 1}, ttl=0.0001)
    await asyncio.sleep(0.05)
    async with engine.begin() as conn:
        turn = "SELECT pg_try_advisory_xact_lock(hashtext('langgraph-broker:store-sweeper'))"
        assert (await conn.execute(text(turn))).scalar_one()
        assert await store.tables.sweep(10) is None  # another process holds the turn
    assert await store.sweep() >= 1


async def _rows(store: Store, root: str) -> int:
    async with store.tables.engine.connect() as conn:
        query = select(func.count()).select_from(store_items).where(store_items.c.prefix == root)
        return int((await conn.execute(query)).scalar_one())


async def _expires(store: Store, root: str) -> Any:
    async with store.tables.engine.connect() as conn:
        query = select(store_items.c.expires_at).where(store_items.c.prefix == root)
        return (await conn.execute(query)).scalar_one()


async def test_an_auth_filter_hides_and_guards_items(store: Store, root: str) -> None:
    """A store handler's filter, matched against the value with namespace and key."""
    await store.aput((root, "a"), "theirs", {"owner": "bob"})
    alice = StoreAccess(store, {"owner": "alice"})
    await alice.put([root, "a"], "mine", {"owner": "alice", "n": 1}, None)
    with pytest.raises(NotAuthorized):
        await alice.put([root, "a"], "unstamped", {"n": 2}, None)
    with pytest.raises(NotFound):
        await alice.put([root, "a"], "theirs", {"owner": "alice"}, None)
    with pytest.raises(NotFound):
        await alice.delete([root, "a"], "theirs")
    assert await alice.get([root, "a"], "theirs", None) is None
    assert (await alice.get([root, "a"], "mine", None)) is not None
    found = await alice.search([root], limit=10, offset=0)
    assert [item.key for item in found] == ["mine"]
    by_namespace = StoreAccess(store, {"namespace": [root, "a"]})
    assert await by_namespace.namespaces(10, 0, prefix=(root,)) == [(root, "a")]
    assert (await store.aget((root, "a"), "theirs")) is not None


async def test_list_namespaces_without_a_prefix(store: Store, root: str) -> None:
    await store.aput((root, "x", "tail"), "k", {"x": 1})
    assert (root, "x", "tail") in await store.alist_namespaces(limit=1000)
    assert (root, "x", "tail") in await store.alist_namespaces(suffix=("tail",), limit=1000)
    assert (root, "x") in await store.alist_namespaces(max_depth=2, limit=1000)


async def test_start_says_which_semantic_search_path_is_in_use(
    indexed: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="broker.memory"):
        await indexed.start()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "broker.memory"]
    # CI's Postgres has no pgvector: the portable path, and how to get pgvector.
    pgvector = await indexed.tables.has_pgvector()
    assert indexed.in_sql == pgvector
    if pgvector:
        assert line.startswith("store: semantic search uses pgvector (")
    elif is_postgres(indexed.tables.engine.dialect):
        assert "uses the portable path" in line
        assert "pgvector is not available: install the pgvector extension" in line
    else:
        assert line.endswith("SQLite has no pgvector")


async def test_search_after_start_keeps_the_portable_scores(indexed: Store, root: str) -> None:
    """Whichever path start chose, scores are cosine similarities of unit vectors."""
    await indexed.start()
    await indexed.aput((root,), "same", {"text": "apples and pears"}, index=["text"])
    await indexed.aput((root,), "other", {"text": "engines and gears"}, index=["text"])
    found = await indexed.asearch((root,), query="apples and pears")
    assert [item.key for item in found] == ["same", "other"]
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    assert found[1].score is not None and -1.0 <= found[1].score < 1.0
