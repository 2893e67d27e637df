"""The edge's checks on their own: the JSON walk and the event-id check."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from api.limits import MAX_DEPTH, body_problem
from broker.errors import BadRequest
from broker.events import LocalEventLog, RedisEventLog, event_id_key


def test_the_walk_names_the_first_unstorable_field() -> None:
    assert body_problem({"a": [1, {"b": "x\x00"}]}) == "a[1].b: must not contain NUL (\\u0000)"
    assert body_problem({"n": 2**63}) == "n: integer out of range (|n| must be below 2^63)"
    assert body_problem({"n": 2**63 - 1, "f": 1.5, "t": True, "z": None}) is None
    deep: list[object] = []
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert body_problem(deep) is None
    assert body_problem({"d": deep}) == f"d[0][0]…: nested deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize("good", ["-1", "0", "", "1-0", "1714000000000-12"])
def test_event_ids_of_our_streams_are_accepted(good: str) -> None:
    event_id_key(good)


@pytest.mark.parametrize(
    "bad", ["zzz", "1", "1-", "-5", "1-2-3", "\uff11-2", "18446744073709551616-0"]
)
async def test_a_malformed_last_event_id_is_a_bad_request_not_an_outage(bad: str) -> None:
    with pytest.raises(BadRequest, match="Last-Event-ID"):
        event_id_key(bad)
    with pytest.raises(BadRequest):
        await LocalEventLog().after("k", bad)
    # Nothing listens on port 1: asking Redis would be a StoreUnavailable (503, retried).
    redis = Redis(host="127.0.0.1", port=1)
    try:
        with pytest.raises(BadRequest):
            await RedisEventLog(redis).after("k", bad)
    finally:
        await redis.aclose()
