"""Worker liveness on Redis (one Redis and a cluster): a worker whose key expired is
reported dead until forgotten; losing Redis' data is reported once and makes no live
worker look dead. Expiry is simulated by deleting the key (no waiting on a TTL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from broker.keys import Keys
from broker.liveness import Beat, LocalLiveness, RedisLiveness
from broker.redis_uri import RedisClient
from tests.contract.conftest import redis_of

TTL = 30.0


@pytest.fixture(params=["redis", "cluster"])
async def redis(request: pytest.FixtureRequest, keys: Keys) -> AsyncIterator[RedisClient]:
    client = redis_of(request)
    yield client
    await client.delete(keys.alive, keys.epoch, *(keys.worker_alive(w) for w in "abc"))
    await client.aclose()


async def test_a_worker_whose_key_expired_is_dead_until_forgotten(
    redis: RedisClient, keys: Keys
) -> None:
    liveness = RedisLiveness(redis, keys)
    assert (await liveness.beat("a", TTL)).dead == []
    assert (await liveness.beat("b", TTL)).dead == []
    await redis.delete(keys.worker_alive("a"))  # its TTL ran out
    assert (await liveness.beat("b", TTL)).dead == ["a"]
    assert (await liveness.beat("c", TTL)).dead == ["a"]
    await liveness.forget("a")
    assert (await liveness.beat("b", TTL)).dead == []
    assert (await liveness.beat("a", TTL)).dead == []  # a stalled worker that came back


async def test_a_leaving_worker_counts_as_dead_at_once(redis: RedisClient, keys: Keys) -> None:
    liveness = RedisLiveness(redis, keys)
    await liveness.beat("a", TTL)
    await liveness.leave("a")
    assert (await liveness.beat("b", TTL)).dead == ["a"]


async def test_losing_redis_data_is_told_once_and_kills_no_one(
    redis: RedisClient, keys: Keys
) -> None:
    liveness = RedisLiveness(redis, keys)
    assert (await liveness.beat("a", TTL)).reset  # a new Redis: nothing to trust yet
    assert not (await liveness.beat("b", TTL)).reset
    assert not (await liveness.beat("a", TTL)).reset
    # What FLUSHALL (or a restart without persistence) does to our keys.
    await redis.delete(keys.alive, keys.epoch, keys.worker_alive("a"), keys.worker_alive("b"))
    first, second = await liveness.beat("b", TTL), await liveness.beat("a", TTL)
    assert (first.reset, second.reset) == (True, False)
    assert first.dead == second.dead == []


async def test_one_process_has_no_one_to_watch() -> None:
    liveness = LocalLiveness()
    assert await liveness.beat("a", TTL) == Beat()
    await liveness.forget("a")
    await liveness.leave("a")
