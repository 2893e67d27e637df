"""Our store against LangGraph's `AsyncPostgresStore`, in-process, on the same Postgres.

Both get the same budget of connections (our engine: a pool of 20; theirs: a psycopg
pool of up to 20, autocommit, as LangGraph Platform configures it) and each its own
fresh database. Operations run `concurrency` at a time; rounds alternate between the
stores and each figure is the median.

`AsyncPostgresStore` keeps vectors only through pgvector (its `setup()` creates the
extension); without pgvector (as on these machines) it runs without an index, so put,
get and search without a query are compared, and our semantic search (the portable
path, fake embeddings of tests/graphs/embeddings.py) is measured alone.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore

from broker.config import IndexSection, StoreSection
from broker.memory import Store
from broker.settings import Settings
from broker.storage.engine import create_engine
from broker.storage.store import open_store_tables

POOL = 20
EMBEDDINGS = Path(__file__).resolve().parents[1] / "tests" / "graphs"
INSTALL_HINT = "pip install -e '.[bench]' (langgraph-checkpoint-postgres, psycopg)"
TOPICS = ["tea", "garden", "music", "travel", "books", "code", "sport", "films"]
WORDS = [
    "a",
    "note",
    "about",
    "my",
    "favourite",
    "kind",
    "of",
    "thing",
    "and",
    "why",
    "it",
    "matters",
    "to",
    "me",
]


class Unavailable(Exception):
    pass


def item_value(n: int) -> dict[str, Any]:
    """The n-th item: a few words about one topic, a number, the topic."""
    rng = random.Random(n)
    topic = TOPICS[n % len(TOPICS)]
    text = " ".join([*rng.sample(WORDS, 6), topic, rng.choice(TOPICS)])
    return {"text": text, "n": n, "topic": topic}


@asynccontextmanager
async def ours(database_uri: str, *, indexed: bool) -> AsyncIterator[BaseStore]:
    engine = create_engine(Settings(DATABASE_URI=database_uri), pool_size=POOL)
    index = IndexSection(embed="./embeddings.py:embed", dims=64) if indexed else None
    try:
        store = Store(open_store_tables(engine), StoreSection(index=index), EMBEDDINGS)
        await store.start()  # pgvector where the database has it, as a server would choose
        yield store
    finally:
        await engine.dispose()


def _theirs_modules() -> tuple[Any, Any, Any]:
    try:
        store = importlib.import_module("langgraph.store.postgres.aio")
        pool = importlib.import_module("psycopg_pool")
        rows = importlib.import_module("psycopg.rows")
    except ImportError as exc:
        raise Unavailable(f"AsyncPostgresStore is not installed ({exc}); {INSTALL_HINT}") from exc
    return store.AsyncPostgresStore, pool.AsyncConnectionPool, rows.dict_row


def theirs_available() -> str | None:
    try:
        _theirs_modules()
    except Unavailable as exc:
        return str(exc)
    return None


@asynccontextmanager
async def theirs(database_uri: str) -> AsyncIterator[BaseStore]:
    """AsyncPostgresStore on a psycopg pool, without an index (no pgvector here)."""
    store_class, pool_class, dict_row = _theirs_modules()
    pool = pool_class(
        database_uri,
        min_size=POOL // 2,
        max_size=POOL,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open()
    try:
        store = store_class(pool)
        await store.setup()
        yield store
    finally:
        await pool.close()


async def _rate(concurrency: int, jobs: Sequence[Callable[[], Awaitable[Any]]]) -> float:
    """Operations per second running `jobs`, `concurrency` at a time."""
    pending = iter(jobs)

    async def lane() -> None:
        for job in pending:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return len(jobs) / (time.perf_counter() - started)


async def measure_round(
    store: BaseStore, items: int, queries: int, concurrency: int, *, semantic: bool
) -> dict[str, float]:
    """put `items`, get each, `queries` filtered listings (and semantic searches)."""
    root = ("bench", uuid.uuid4().hex[:12])
    keys = [f"item-{n}" for n in range(items)]
    puts = [
        functools.partial(store.aput, (*root, TOPICS[n % 8]), key, item_value(n))
        for n, key in enumerate(keys)
    ]
    rates = {"put": await _rate(concurrency, puts)}
    found: list[Any] = []

    async def get(n: int) -> None:
        found.append(await store.aget((*root, TOPICS[n % 8]), keys[n]))

    rates["get"] = await _rate(concurrency, [functools.partial(get, n) for n in range(items)])
    if sum(item is not None for item in found) != items:
        raise RuntimeError("a get found nothing")
    listings = [
        lambda t=TOPICS[q % 8]: store.asearch(root, filter={"topic": t}, limit=10)
        for q in range(queries)
    ]
    rates["search"] = await _rate(concurrency, listings)
    if semantic:
        searches = [lambda q=q: _semantic(store, root, q) for q in range(queries)]
        rates["semantic_search"] = await _rate(concurrency, searches)
    return rates


async def _semantic(store: BaseStore, root: tuple[str, ...], q: int) -> None:
    topic = TOPICS[q % len(TOPICS)]
    hits = await store.asearch(root, query=f"my favourite {topic}", limit=10)
    if len(hits) != 10 or hits[0].score is None:
        raise RuntimeError(f"semantic search returned {len(hits)} items")


async def compare(
    our_uri: str, their_uri: str, *, items: int, queries: int, concurrency: int, rounds: int
) -> dict[str, Any]:
    """ops/s per operation for each store (median of `rounds`), and the ratios."""
    async with AsyncExitStack() as stack:
        stores = {
            "ours": await stack.enter_async_context(ours(our_uri, indexed=False)),
            "ours_indexed": await stack.enter_async_context(ours(our_uri, indexed=True)),
            "theirs": await stack.enter_async_context(theirs(their_uri)),
        }
        for name, store in stores.items():  # warm-up: pools filled, statements prepared
            await measure_round(store, 50, 10, concurrency, semantic=name == "ours_indexed")
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in stores}
        for index in range(rounds):
            order = list(stores) if index % 2 == 0 else list(reversed(stores))
            for name in order:
                semantic = name == "ours_indexed"
                measured[name].append(
                    await measure_round(
                        stores[name], items, queries, concurrency, semantic=semantic
                    )
                )
    figures: dict[str, Any] = {"items": items, "queries": queries, "concurrency": concurrency}
    for name, rounds_ in measured.items():
        for op in rounds_[0]:
            figures[f"{name}_{op}_per_second"] = statistics.median(r[op] for r in rounds_)
    for op in ("put", "get", "search"):
        figures[f"{op}_ratio"] = (
            figures[f"ours_{op}_per_second"] / figures[f"theirs_{op}_per_second"]
        )
    return figures
