"""Assistants, threads and meta endpoints through the SDK."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import checkpoint_writes, checkpoints, runs

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


async def test_system_assistants_use_uuid5(client: LangGraphClient) -> None:
    assistant = await client.assistants.get("agent")
    assert assistant["assistant_id"] == str(uuid.uuid5(SYSTEM_NAMESPACE, "agent"))
    assert assistant["metadata"] == {"created_by": "system"}
    same = await client.assistants.get(assistant["assistant_id"])
    assert same == assistant
    found = await client.assistants.search(graph_id="counter")
    assert [a["graph_id"] for a in found] == ["counter"]
    everything = await client.assistants.search(limit=100)
    assert {"agent", "counter", "failing", "slow"} <= {a["graph_id"] for a in everything}
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))


async def test_thread_lifecycle(client: LangGraphClient, engine: AsyncEngine) -> None:
    tid = str(uuid.uuid4())
    thread = await client.threads.create(thread_id=tid, metadata={"owner": "test-lifecycle"})
    assert (thread["thread_id"], thread["status"], thread["values"]) == (tid, "idle", None)
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=tid)
    same = await client.threads.create(thread_id=tid, if_exists="do_nothing")
    assert same["thread_id"] == tid
    empty: dict[str, Any] = dict(await client.threads.get_state(tid))
    assert (empty["values"], empty["next"], empty["checkpoint"]) == ({}, [], None)

    await client.runs.wait(tid, "counter", input={"count": 0, "log": []})
    found: list[Any] = await client.threads.search(metadata={"owner": "test-lifecycle"})
    assert [t["thread_id"] for t in found] == [tid]
    assert found[0]["metadata"]["graph_id"] == "counter"
    assert found[0]["values"] == {"count": 111, "log": ["one", "two", "three"]}

    await client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    left = {
        table.name: await _count(engine, table, table.c.thread_id == key)
        for table, key in ((checkpoints, tid), (checkpoint_writes, tid), (runs, uuid.UUID(tid)))
    }
    assert left == {"checkpoints": 0, "checkpoint_writes": 0, "runs": 0}
    with pytest.raises(NotFoundError):
        await client.threads.delete(tid)


async def test_meta(client: LangGraphClient, server: str) -> None:
    info = await client.http.get("/info")
    assert info["flags"]["assistants"] is True
    assert await client.http.get("/ok") == {"ok": True}


async def _count(engine: AsyncEngine, table: Any, condition: Any) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(condition)
        return int((await conn.execute(query)).scalar_one())
