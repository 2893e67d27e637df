"""The store bench's in-process round (bench/store.py) on our store, at tiny counts:
put, get, filtered search and semantic search all run, check what they get, and
yield rates. (The comparison with AsyncPostgresStore runs in `make bench`, which
installs it.)"""

from __future__ import annotations

import math

from bench import store as store_bench
from broker.settings import Settings


async def test_a_store_round_measures_every_operation(settings: Settings) -> None:
    async with store_bench.ours(settings.database_uri, indexed=True) as store:
        rates = await store_bench.measure_round(store, 40, 8, 4, semantic=True)
    assert set(rates) == {"put", "get", "search", "semantic_search"}
    assert all(math.isfinite(rate) and rate > 0 for rate in rates.values())
