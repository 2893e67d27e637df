"""A2A (the Agent2Agent protocol, JSON-RPC binding, v0.3 method names as LangGraph's spec
has them): an agent card per assistant and `POST /a2a/{assistant_id}`.

Everything about the JSON-RPC request is answered as a JSON-RPC error (api/a2a/errors.py
gives its HTTP status): parse error, invalid request, method not found, invalid params,
task not found or not cancelable. What is about the HTTP request is answered as on
every route, `{"detail"}`: an unknown assistant (404), authentication (401/403), a body
too large (413), a store outage (503).
"""

from __future__ import annotations

import json
from typing import Any

from a2a.compat.v0_3 import types as a2a
from fastapi import APIRouter, Query, Request
from langchain_core.runnables import RunnableConfig
from starlette.responses import Response, StreamingResponse

from api.a2a import card, methods, stream
from api.a2a.errors import INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError
from api.auth.authorize import AuthorizeDep, Authorizer, Forbidden, Refused
from api.deps import RuntimeDep
from api.responses import JSON
from api.sse import SSE_HEADERS
from broker import introspection
from broker.errors import BrokerError
from broker.models import Assistant
from broker.runtime import Runtime

router = APIRouter(tags=["a2a"])

MESSAGE_METHODS = ("message/send", "message/stream")
TASK_METHODS = ("tasks/get", "tasks/cancel")


@router.get("/.well-known/agent-card.json")
async def agent_card(
    request: Request,
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    assistant_id: str = Query(description="The assistant whose card this is"),
) -> Response:
    filter = await authorize("assistants", "read", {"assistant_id": assistant_id})
    assistant = await runtime.service.resolve_assistant(assistant_id, filter)
    base = str(request.base_url).rstrip("/")
    built = card.build(assistant, runtime.service.graphs.descriptions, base)
    return JSON(built.model_dump(mode="json", by_alias=True, exclude_none=True))


@router.post("/a2a/{assistant_id}", openapi_extra=card.RPC_OPENAPI)
async def rpc(
    assistant_id: str, request: Request, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    assistant = await runtime.service.resolve_assistant(assistant_id)
    request_id: Any = None
    try:
        envelope = _envelope(await request.body())
        request_id = envelope["id"]
        return await _dispatch(runtime, authorize, assistant, envelope)
    except RpcError as exc:
        return JSON(exc.envelope(request_id), status_code=exc.status)
    except (Forbidden, Refused) as exc:  # an auth handler's refusal keeps its status
        refused = RpcError(INVALID_REQUEST, exc.detail).envelope(request_id)
        return JSON(refused, status_code=exc.status_code)
    except BrokerError as exc:
        if exc.status_code >= 500:  # a store outage (503), the operator's bug (500)
            raise
        status = exc.status_code if exc.status_code in (404, 409) else 400
        return JSON(RpcError.params(exc.detail).envelope(request_id), status_code=status)


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except ValueError:
        raise RpcError(PARSE_ERROR, "Parse error: the body is not JSON") from None
    if not isinstance(envelope, dict) or envelope.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 request")
    if not isinstance(envelope.get("id"), (str, int)) or isinstance(envelope["id"], bool):
        raise RpcError(INVALID_REQUEST, "Invalid request: id must be a string or a number")
    if not isinstance(envelope.get("method"), str):
        raise RpcError(INVALID_REQUEST, "Invalid request: method must be a string")
    return envelope


async def _dispatch(
    runtime: Runtime, authorize: Authorizer, assistant: Assistant, envelope: dict[str, Any]
) -> Response:
    method, params, request_id = envelope["method"], envelope.get("params"), envelope["id"]
    if method in TASK_METHODS:
        call = methods.Call(runtime, authorize, assistant, accepts_messages=False)
        task_params = methods.parse(methods.TaskParams, params)
        handle = methods.get if method == "tasks/get" else methods.cancel
        return _result(request_id, await handle(call, task_params))
    if method not in MESSAGE_METHODS:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
    call = methods.Call(runtime, authorize, assistant, await _accepts_messages(runtime, assistant))
    send_params = methods.parse(a2a.MessageSendParams, params)
    if method == "message/send":
        return _result(request_id, await methods.send(call, send_params))
    submission = await methods.start(call, send_params, stream.STREAM_MODES)
    return StreamingResponse(
        stream.events(call, submission, request_id),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


def _result(request_id: Any, result: dict[str, Any]) -> Response:
    return JSON({"jsonrpc": "2.0", "id": request_id, "result": result})


async def _accepts_messages(runtime: Runtime, assistant: Assistant) -> bool:
    """Whether the assistant's input schema has `messages` (text parts go there)."""
    config: RunnableConfig = assistant.config  # type: ignore[assignment]
    graph = await runtime.service.graphs.get(assistant.graph_id, config, access="assistants.read")
    return "messages" in introspection.input_fields(graph, assistant.config)
