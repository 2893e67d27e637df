"""MCP at /mcp: every assistant the caller may see is a tool (the official `mcp` SDK's
low-level server behind its streamable HTTP transport, stateless, so any API process
answers any request, as LangGraph's is).

As LangGraph documents it: the tool's name is the assistant's name, its description the
assistant's, its input schema the graph's input schema. Calling a tool runs the
assistant statelessly, as `POST /runs/wait` would (api/agents.py), and answers the
last message's text, with the final values as structured content; a failed run, or
one stopped at an interrupt (which nothing could resume), is a tool error. Only tools are offered: any other method is the protocol's "method not found".
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import mcp_types as types
from fastapi import FastAPI
from langchain_core.runnables import RunnableConfig
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api import agents
from api.auth.authorize import Authorizer, authorizer_of
from broker import introspection, jsonable
from broker.errors import BrokerError
from broker.models import Assistant, RunRequest
from broker.runtime import Runtime

PATHS = ("/mcp", "/mcp/")
PAGE = 100
_INVALID = re.compile(r"[^A-Za-z0-9_.-]")  # what MCP allows in a tool name
_NAME_LIMIT = 128

Running = Callable[[], AbstractAsyncContextManager[None]]


def install(app: FastAPI) -> Running:
    """Serves /mcp; returns what the app's lifespan must run (the transport's tasks)."""
    server: Server[Any] = Server(
        "langgraph-broker", on_list_tools=_list_tools, on_call_tool=_call_tool
    )
    manager = StreamableHTTPSessionManager(server, stateless=True, json_response=True)

    # Both spellings, without a redirect between them. POST only: stateless, the server
    # never speaks unasked (no GET stream) and keeps no session (nothing to DELETE).
    for path in PATHS:
        app.router.routes.append(Route(path, _Transport(manager), methods=["POST"]))

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        async with manager.run():
            yield

    return running


_JSONRPC_ERROR = {
    "description": "A JSON-RPC error (e.g. -32700: the body is not JSON)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def path_item(path: str) -> dict[str, Any]:
    """What GET /openapi.json says of the endpoint at `path` (one of PATHS)."""
    operation_id = "post_mcp" if path.endswith("/") else "post_mcp_no_slash"
    return {"post": {**_POST, "operationId": operation_id}}


_POST: dict[str, Any] = {
    "tags": ["mcp"],
    "summary": "MCP Post",
    "description": "A JSON-RPC 2.0 message, per MCP's streamable HTTP transport "
    "(stateless: no session is kept). Accept must include application/json and "
    "text/event-stream.",
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "200": {
            "description": "A JSON-RPC response",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "202": {"description": "A notification or response, accepted"},
        "400": _JSONRPC_ERROR,
        "406": _JSONRPC_ERROR,
        "413": {"description": "The body is larger than BROKER_MAX_BODY_BYTES"},
        "415": _JSONRPC_ERROR,
    },
}


class _Transport:
    """The transport as an ASGI app (a Route takes a plain function for a request handler)."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The SDK refuses any other Content-Type in plain text (a 400 that is not JSON):
        # refused here first, as every other endpoint refuses what a client sent.
        content_type = Request(scope).headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            detail = f"Content-Type: MCP takes application/json, not {content_type or 'none'!r}"
            await JSONResponse({"detail": detail}, status_code=415)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


# -- tools ------------------------------------------------------------------------------


async def _list_tools(
    ctx: ServerRequestContext[Any, Any], _: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    runtime, authorize = await _caller(ctx)
    tools = await _tools(runtime, authorize)
    return types.ListToolsResult(
        tools=[await _tool(runtime, name, assistant) for name, assistant in tools.items()]
    )


async def _call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    runtime, authorize = await _caller(ctx)
    assistant = (await _tools(runtime, authorize)).get(params.name)
    if assistant is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
    request = RunRequest(str(assistant.assistant_id), input=dict(params.arguments or {}))
    try:
        submission = await agents.submit(runtime, authorize, None, request)
    except BrokerError as exc:  # refused as a run would be: the tool call failed
        if exc.status_code >= 500:  # an outage is not the call's fault: a protocol error
            raise
        return _error(exc.detail)
    output = await agents.output_of(runtime, submission)
    if (failed := agents.failure(output)) is not None:
        return _error(failed)
    if "__interrupt__" in output:  # nothing can resume it: the call is stateless
        asked = jsonable.dumps([i.get("value") for i in output["__interrupt__"]]).decode()
        return _error(
            f"The assistant stopped at an interrupt, asking {asked}: a tool call "
            "cannot resume it (use a thread, or A2A)"
        )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_answer(output))],
        structured_content=output,
    )


async def _caller(ctx: ServerRequestContext[Any, Any]) -> tuple[Runtime, Authorizer]:
    request = ctx.request
    assert isinstance(request, Request)  # the streamable HTTP transport attaches it
    runtime: Runtime = request.app.state.runtime
    return runtime, authorizer_of(request)


async def _tools(runtime: Runtime, authorize: Authorizer) -> dict[str, Assistant]:
    """Tool name → assistant, for every assistant the caller may see; the oldest keeps
    a name that several share, the others get their id appended."""
    filter = await authorize("assistants", "search", {"graph_id": None, "metadata": {}})
    found: list[Assistant] = []
    while True:
        page, _ = await runtime.assistants.search(
            limit=PAGE, offset=len(found), sort_by="created_at", sort_order="asc", filter=filter
        )
        found += page
        if len(page) < PAGE:
            break
    tools: dict[str, Assistant] = {}
    for assistant in sorted(found, key=lambda a: (a.created_at, str(a.assistant_id))):
        name = _INVALID.sub("_", assistant.name)[:_NAME_LIMIT] or "assistant"
        if name in tools:
            name = f"{name[: _NAME_LIMIT - 37]}_{assistant.assistant_id}"
        tools[name] = assistant
    return tools


async def _tool(runtime: Runtime, name: str, assistant: Assistant) -> types.Tool:
    config = cast(RunnableConfig, assistant.config)
    graph = await runtime.service.graphs.get(assistant.graph_id, config, access="assistants.read")
    schema = introspection.schemas(graph, assistant.config)["input_schema"]
    if not schema or schema.get("type") != "object":  # MCP takes objects only
        schema = {"type": "object"}
    description = assistant.description or runtime.service.graphs.descriptions.get(
        assistant.graph_id
    )
    return types.Tool(name=name, description=description, input_schema=schema)


def _answer(output: dict[str, Any]) -> str:
    """The last message's text, as a chat client wants it; else the values as JSON."""
    message = agents.last_message(output)
    if message is not None:
        return agents.message_text(message)
    return jsonable.dumps(output).decode()


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )
