"""What a graph raises is the graph's failure, even an OSError: the run ends `error` at
its first attempt, with the exception on the stream, and is never retried."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from langgraph_sdk.client import LangGraphClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import runs
from tests.e2e.helpers import SLOW_LIMIT

TIMED_OUT = {"error": "TimeoutError", "message": "upstream took too long"}


async def _attempt(engine: AsyncEngine, run_id: str) -> int:
    async with engine.connect() as conn:
        query = select(runs.c.attempt).where(runs.c.run_id == UUID(run_id))
        return int((await conn.execute(query)).scalar_one())


async def _stream(client: LangGraphClient, tid: str) -> list[Any]:
    parts = client.runs.stream(tid, "timing_out", input={"topic": "x"})
    return [p async for p in parts]


async def test_a_timeout_in_a_node_ends_the_run_in_error_without_retries(
    client: LangGraphClient, engine: AsyncEngine
) -> None:
    tid = (await client.threads.create())["thread_id"]
    # A run handed back as if Postgres had failed would stream attempt after attempt.
    parts = await asyncio.wait_for(_stream(client, tid), SLOW_LIMIT)
    assert [p.event for p in parts] == ["metadata", "values", "error"]
    assert parts[0].data["attempt"] == 1
    assert parts[-1].data == TIMED_OUT
    run_id = parts[0].data["run_id"]
    run: dict[str, Any] = dict(await client.runs.get(tid, run_id))
    assert run["status"] == "error"
    assert (await client.threads.get(tid))["status"] == "error"
    await asyncio.sleep(1.5)  # longer than a hand-back's 1 s delay before the retry
    assert await _attempt(engine, run_id) == 1
    assert (await client.runs.get(tid, run_id))["status"] == "error"
