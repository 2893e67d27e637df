"""The seed's Python example (streaming-api.zh.md), verbatim but for the URL."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import get_client


async def test_seed_example_streams_updates_in_order(server: str) -> None:
    client = get_client(url=server)
    inputs: dict[str, Any] = {"messages": [{"role": "user", "content": "what's the weather in sf"}]}

    # --- the seed, unchanged ---
    assistant_id = "agent"
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    chunks = []
    async for chunk in client.runs.stream(
        thread_id,
        assistant_id,
        input=inputs,
        stream_mode="updates",
    ):
        chunks.append(chunk)
    # ---

    assert [c.event for c in chunks] == ["metadata", "updates", "updates", "updates"]
    assert chunks[0].data["attempt"] == 1
    updates = [c.data for c in chunks[1:]]
    assert [next(iter(u)) for u in updates] == ["agent", "tools", "agent"]
    tool_call = updates[0]["agent"]["messages"][0]["tool_calls"][0]
    assert (tool_call["name"], tool_call["args"]) == ("get_weather", {"city": "sf"})
    assert updates[1]["tools"]["messages"][0]["content"] == "It's always sunny in sf."
    final = updates[2]["agent"]["messages"][0]
    assert (final["type"], final["content"]) == ("ai", "The tool says: It's always sunny in sf.")
    await client.aclose()
