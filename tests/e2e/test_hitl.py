"""Human in the loop: interrupt(), resume, Command update/goto, interrupt_before, forks."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.e2e.helpers import as_dict, state_dict, thread_dict

pytestmark = pytest.mark.pooled  # also behind PgBouncer (tests/e2e/conftest.py)

COUNTER: dict[str, Any] = {"count": 0, "log": []}


async def _interrupted(client: LangGraphClient) -> tuple[str, list[Any]]:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            tid, "review", input={"topic": "otters"}, stream_mode=["values", "updates"]
        )
    ]
    return tid, parts


async def test_interrupt_pauses_the_thread(client: LangGraphClient) -> None:
    tid, parts = await _interrupted(client)
    updates = [p.data for p in parts if p.event == "updates"]
    assert list(updates[-1]) == ["__interrupt__"]
    question = updates[-1]["__interrupt__"][0]
    assert question["value"] == {"question": "Publish this draft?", "draft": "A post about otters"}
    last_values = [p.data for p in parts if p.event == "values"][-1]
    assert last_values["__interrupt__"] == [question]
    run = (await client.runs.list(tid))[0]
    assert run["status"] == "success"
    thread = await thread_dict(client, tid)
    assert thread["status"] == "interrupted"
    assert [i["id"] for group in thread["interrupts"].values() for i in group] == [question["id"]]
    state = await state_dict(client, tid)
    assert state["next"] == ["review"]
    assert state["interrupts"][0]["id"] == question["id"]


async def test_wait_reports_the_interrupt(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    result: dict[str, Any] = as_dict(
        await client.runs.wait(thread["thread_id"], "review", input={"topic": "owls"})
    )
    assert result["draft"] == "A post about owls"
    assert result["__interrupt__"][0]["value"]["question"] == "Publish this draft?"


async def test_resume_with_command(client: LangGraphClient) -> None:
    tid, _ = await _interrupted(client)
    result: dict[str, Any] = as_dict(
        await client.runs.wait(tid, "review", command={"resume": "yes"})
    )
    assert result == {
        "topic": "otters",
        "draft": "A post about otters",
        "verdict": "yes",
        "published": True,
    }
    thread = await thread_dict(client, tid)
    assert (thread["status"], thread["interrupts"]) == ("idle", {})


async def test_command_update_and_goto(client: LangGraphClient) -> None:
    tid, _ = await _interrupted(client)
    command: Any = {"update": {"verdict": "yes", "draft": "edited"}, "goto": "publish"}
    result: dict[str, Any] = as_dict(await client.runs.wait(tid, "review", command=command))
    assert (result["draft"], result["published"]) == ("edited", True)


async def test_interrupt_before_then_continue(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER, interrupt_before=["two"])
    state = await state_dict(client, tid)
    assert (state["values"]["count"], state["next"]) == (1, ["two"])
    assert (await thread_dict(client, tid))["status"] == "interrupted"
    result: dict[str, Any] = as_dict(await client.runs.wait(tid, "counter", input=None))
    assert result["count"] == 111
    assert (await thread_dict(client, tid))["status"] == "idle"


async def test_interrupt_after(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER, interrupt_after=["one"])
    assert (await state_dict(client, tid))["next"] == ["two"]


async def test_fork_from_a_past_checkpoint(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "counter", input=COUNTER)
    history: list[Any] = await client.threads.get_history(tid, limit=10)
    after_one = next(h for h in history if h["values"].get("count") == 1)
    result: dict[str, Any] = as_dict(
        await client.runs.wait(
            tid, "counter", input=None, checkpoint_id=after_one["checkpoint"]["checkpoint_id"]
        )
    )
    assert result == {"count": 111, "log": ["one", "two", "three"]}
    forked: list[Any] = await client.threads.get_history(tid, limit=20)
    assert (
        forked[0]["parent_checkpoint"]["checkpoint_id"] != history[0]["checkpoint"]["checkpoint_id"]
    )
