"""MCP at /mcp through the official `mcp` client (streamable HTTP over loopback), on
both topologies: every assistant is a tool, and calling one runs it as a stateless run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import mcp_types as types
import pytest
from langgraph_sdk.client import LangGraphClient
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


@asynccontextmanager
async def session(server: str, path: str = "/mcp") -> AsyncIterator[ClientSession]:
    async with (
        streamable_http_client(server + path) as (read, write),
        ClientSession(read, write) as opened,
    ):
        await opened.initialize()
        yield opened


def said(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


async def test_assistants_are_tools_with_their_input_schema(
    server: str, client: LangGraphClient
) -> None:
    created = await client.assistants.create(
        "agent", name="weather desk", description="Answers about the weather"
    )
    twins = [await client.assistants.create("counter", name="twin") for _ in range(2)]
    async with session(server) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    # The older twin keeps the name; the other is told apart by its id.
    older, newer = sorted(twins, key=lambda a: (a["created_at"], a["assistant_id"]))
    assert {"twin", f"twin_{newer['assistant_id']}"} <= set(tools)
    assert older["assistant_id"] != newer["assistant_id"]
    assert {"agent", "chat", "counter"} <= set(tools)
    assert tools["agent"].input_schema["required"] == ["messages"]
    assert tools["counter"].input_schema["type"] == "object"
    mine = tools["weather_desk"]  # MCP's tool names allow no space
    assert mine.description == "Answers about the weather"
    assert "messages" in mine.input_schema["properties"]
    for made in [created, *twins]:
        await client.assistants.delete(made["assistant_id"])


async def test_calling_a_tool_runs_the_assistant(server: str) -> None:
    async with session(server, "/mcp/") as mcp:  # the spec's spelling, too
        result = await mcp.call_tool("agent", said("hello over MCP"))
        weather = await mcp.call_tool("agent", said("what is the weather in Paris"))
    assert not result.is_error
    assert result.content == [types.TextContent(type="text", text="You said: hello over MCP")]
    assert result.structured_content is not None
    assert [m["type"] for m in result.structured_content["messages"]] == ["human", "ai"]
    assert isinstance(weather.content[0], types.TextContent)
    assert weather.content[0].text == "The tool says: It's always sunny in Paris."


async def test_a_failed_or_interrupted_run_is_a_tool_error_an_unknown_tool_a_protocol_error(
    server: str,
) -> None:
    async with session(server) as mcp:
        failed = await mcp.call_tool("failing", {"value": "x"})
        stopped = await mcp.call_tool("interrupting", {"question": "Your name?"})
        with pytest.raises(MCPError) as unknown:
            await mcp.call_tool("no_such_agent", {})
    assert failed.is_error
    assert isinstance(failed.content[0], types.TextContent)
    assert failed.content[0].text == "ValueError: cannot handle 'x!'"
    assert unknown.value.code == types.INVALID_PARAMS
    assert stopped.is_error and isinstance(stopped.content[0], types.TextContent)
    assert '[{"question":"Your name?"}]' in stopped.content[0].text


async def test_what_mcp_does_not_offer_is_refused(server: str) -> None:
    async with session(server) as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.list_prompts()
    assert caught.value.code == types.METHOD_NOT_FOUND
    async with httpx.AsyncClient(base_url=server) as http:
        stream = await http.get("/mcp", headers={"Accept": "text/event-stream"})
        broken = await http.post(
            "/mcp",
            content=b"{not json",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        untyped = await http.post("/mcp/", content=b"{}", headers={"Content-Type": "text/plain"})
        document = (await http.get("/openapi.json")).json()
    assert (stream.status_code, stream.headers["Allow"]) == (405, "POST")
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, -32700)
    assert untyped.status_code == 415 and "application/json" in untyped.json()["detail"]
    assert set(document["paths"]["/mcp/"]) == set(document["paths"]["/mcp"]) == {"post"}
