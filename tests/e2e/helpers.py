"""Small waits and reads shared by the end-to-end tests (bounded in time)."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph_sdk.client import LangGraphClient

SLOW_LIMIT = 30.0  # seconds any wait in these tests may take before it fails


async def wait_for_status(
    client: LangGraphClient, tid: str, rid: str, *statuses: str, timeout: float = SLOW_LIMIT
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run: dict[str, Any] = dict(await client.runs.get(tid, rid))
        if run["status"] in statuses:
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {rid} is {run['status']}, never reached {statuses}")
        await asyncio.sleep(0.05)


async def wait_for_progress(client: LangGraphClient, tid: str, done: int) -> None:
    """Until the thread's checkpointed state shows `done` ticks of the slow graph."""
    for _ in range(int(SLOW_LIMIT / 0.05)):
        state: dict[str, Any] = dict(await client.threads.get_state(tid))
        if state["values"].get("done", 0) >= done:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"thread {tid} never reached {done} ticks")


async def thread_dict(client: LangGraphClient, tid: str) -> dict[str, Any]:
    return dict(await client.threads.get(tid))


async def state_dict(client: LangGraphClient, tid: str) -> dict[str, Any]:
    return dict(await client.threads.get_state(tid))


def as_dict(value: Any) -> dict[str, Any]:
    """A run's output; the SDK types it as a list or a dict, ours is always a dict."""
    assert isinstance(value, dict)
    return value
