"""Errors are judged where they arise: a store's adapter names its outage, and
whatever a graph raises (OSError and TimeoutError included) is the graph's failure."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, TypedDict
from uuid import uuid4

import pytest
from langgraph.graph import START, StateGraph
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.errors import StoreUnavailable, is_transient
from broker.events import RedisEventBus
from broker.keys import Keys
from broker.models import Claim, MultitaskStrategy, Run, RunStatus
from broker.queue import RedisRunQueue
from tests.processes import free_port
from worker.execute import execute


@pytest.fixture
async def nowhere() -> Any:
    """A Redis client for a port nothing listens on: every command is refused."""
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    yield redis
    await redis.aclose()


async def test_a_refused_redis_reaches_the_queue_user_as_store_unavailable(nowhere: Redis) -> None:
    queue = RedisRunQueue(nowhere, Keys("test"))
    with pytest.raises(StoreUnavailable) as raised:
        await queue.push(uuid4())
    assert raised.value.store == "Redis"
    assert isinstance(raised.value.__cause__, RedisConnectionError)
    assert "Redis is unreachable" in raised.value.detail
    assert "REDIS_URI" in raised.value.detail
    assert raised.value.status_code == 503
    assert is_transient(raised.value)
    with pytest.raises(StoreUnavailable):
        await queue.pop(0.1)


async def test_a_refused_redis_reaches_the_bus_user_as_store_unavailable(nowhere: Redis) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        await RedisEventBus(nowhere).publish("channel", b"frame")
    assert raised.value.store == "Redis"


@pytest.mark.parametrize(
    "exc", [OSError("disk"), TimeoutError("slow"), ConnectionError("peer"), KeyError("topic")]
)
def test_what_a_graph_raises_is_not_transient(exc: Exception) -> None:
    assert not is_transient(exc)


class State(TypedDict):
    topic: str


async def _timing_out(state: State) -> State:
    # async: Python 3.11 drops the frames of a sync node, which runs in an executor thread
    raise TimeoutError("upstream took too long")


def _claim() -> Claim:
    now = datetime.now(UTC)
    run = Run(
        run_id=uuid4(),
        thread_id=uuid4(),
        assistant_id=uuid4(),
        created_at=now,
        updated_at=now,
        status=RunStatus.RUNNING,
        metadata={},
        kwargs={"input": {"topic": "x"}, "config": {"configurable": {"graph_id": "g"}}},
        multitask_strategy=MultitaskStrategy.ENQUEUE,
        attempt=1,
    )
    return Claim(run, 1, temporary=True)


async def test_a_graph_raising_timeout_error_fails_the_run_with_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    builder = StateGraph(State)
    builder.add_node("call", _timing_out)
    builder.add_edge(START, "call")
    frames: list[bytes] = []
    with caplog.at_level(logging.ERROR, logger="worker.execute"):
        outcome, result = await execute(_claim(), builder.compile(), None, frames.append)
    error = {"error": "TimeoutError", "message": "upstream took too long"}
    assert (outcome.status, outcome.error, result.error) == (RunStatus.ERROR, error, error)
    assert frames[-1].startswith(b"event: error\r\n")
    assert b'"message":"upstream took too long"' in frames[-1]
    [record] = [r for r in caplog.records if r.name == "worker.execute"]
    assert record.exc_info is not None
    assert "test_errors.py" in caplog.text and "_timing_out" in caplog.text  # file and frame
