"""Thread state edits, patch, copy and count; state at a checkpoint."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError

from tests.e2e.helpers import state_dict, thread_dict, wait_for_progress

pytestmark = pytest.mark.pooled  # also behind PgBouncer (tests/e2e/conftest.py)

COUNTER: dict[str, Any] = {"count": 0, "log": []}


async def test_update_state_writes_a_checkpoint(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER)
    written: dict[str, Any] = dict(
        await client.threads.update_state(tid, {"count": 5, "log": ["edit"]}, as_node="three")
    )
    state = await state_dict(client, tid)
    assert state["checkpoint"]["checkpoint_id"] == written["checkpoint"]["checkpoint_id"]
    assert state["values"] == {"count": 5, "log": ["one", "two", "three", "edit"]}
    assert state["metadata"]["source"] == "update"
    thread_now = await thread_dict(client, tid)
    assert thread_now["values"] == state["values"]
    history: list[Any] = await client.threads.get_history(tid, limit=2)
    assert history[1]["values"]["count"] == 111


async def test_update_state_while_busy_is_409(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": 20, "delay": 0.1})
    await wait_for_progress(client, tid, 1)
    with pytest.raises(ConflictError):
        await client.threads.update_state(tid, {"done": 0})
    await client.runs.cancel(tid, run["run_id"])


async def test_update_state_of_thread_without_graph_is_400(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread["thread_id"], {"count": 1})


async def test_update_state_knows_the_graph_from_metadata(client: LangGraphClient) -> None:
    thread = await client.threads.create(graph_id="counter")
    await client.threads.update_state(thread["thread_id"], {"count": 7}, as_node="one")
    assert (await state_dict(client, thread["thread_id"]))["values"]["count"] == 7


async def test_state_at_checkpoint(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER)
    history: list[Any] = await client.threads.get_history(tid, limit=10)
    target = history[2]
    at: dict[str, Any] = dict(
        await client.threads.get_state(tid, checkpoint_id=target["checkpoint"]["checkpoint_id"])
    )
    assert at["values"] == target["values"]
    by_body: dict[str, Any] = dict(
        await client.threads.get_state(tid, checkpoint=target["checkpoint"])
    )
    assert by_body["values"] == target["values"]
    before: list[Any] = await client.threads.get_history(tid, before=target["checkpoint"], limit=10)
    assert [h["checkpoint"]["checkpoint_id"] for h in before] == [
        h["checkpoint"]["checkpoint_id"] for h in history[3:]
    ]
    filtered: list[Any] = await client.threads.get_history(tid, metadata={"step": 1}, limit=10)
    assert [h["metadata"]["step"] for h in filtered] == [1]


async def test_patch_copy_count(client: LangGraphClient, server: str) -> None:
    tag = str(uuid.uuid4())
    thread = await client.threads.create(metadata={"tag": tag, "a": 1})
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER)
    patched: dict[str, Any] = dict(await client.threads.update(tid, metadata={"b": 2}))
    assert patched["metadata"]["a"] == 1 and patched["metadata"]["b"] == 2
    async with httpx.AsyncClient(base_url=server) as http:
        minimal = await http.patch(
            f"/threads/{tid}", json={"metadata": {"c": 3}}, headers={"Prefer": "return=minimal"}
        )
        assert minimal.status_code == 204
        missing = await http.post(f"/threads/{uuid.uuid4()}/copy")
        assert missing.status_code == 409
    # the SDK's threads.copy returns None; the server answers with the new thread
    copy: dict[str, Any] = await client.http.post(f"/threads/{tid}/copy", json=None)
    assert copy["thread_id"] != tid
    assert copy["metadata"]["tag"] == tag and copy["status"] == "idle"
    assert (await state_dict(client, copy["thread_id"]))["values"]["count"] == 111
    original: list[Any] = await client.threads.get_history(tid, limit=10)
    copied: list[Any] = await client.threads.get_history(copy["thread_id"], limit=10)
    assert [h["values"] for h in copied] == [h["values"] for h in original]
    assert await client.threads.count(metadata={"tag": tag}) == 2
    assert await client.threads.count(metadata={"tag": tag}, status="busy") == 0
