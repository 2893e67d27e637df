"""An assistant's agent card (`GET /.well-known/agent-card.json?assistant_id=…`), and
what our OpenAPI document says of the JSON-RPC endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a2a.compat.v0_3 import types as a2a

from api.openapi import JSONRPC_ERROR
from broker.models import Assistant

MODES = ["text/plain", "application/json"]  # text parts and data parts


def build(assistant: Assistant, descriptions: Mapping[str, str | None], base: str) -> a2a.AgentCard:
    description = (
        assistant.description
        or descriptions.get(assistant.graph_id)
        or f"Assistant '{assistant.name}' of graph '{assistant.graph_id}'"
    )
    skill = a2a.AgentSkill(
        id=f"{assistant.graph_id}-main",
        name=f"{assistant.name} capabilities",
        description=description,
        tags=[assistant.graph_id],
        input_modes=MODES,
        output_modes=MODES,
    )
    return a2a.AgentCard(
        name=assistant.name,
        description=description,
        url=f"{base}/a2a/{assistant.assistant_id}",
        version=str(assistant.version),
        protocol_version="0.3.0",
        preferred_transport="JSONRPC",
        capabilities=a2a.AgentCapabilities(
            streaming=True, push_notifications=False, state_transition_history=False
        ),
        default_input_modes=MODES,
        default_output_modes=MODES,
        skills=[skill],
    )


_PART = {
    "type": "object",
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": ["text", "data"]},
        "text": {"type": "string"},
        "data": {"type": "object"},
    },
}
_ENVELOPE = {
    "type": "object",
    "required": ["jsonrpc", "id", "method"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": {"type": ["string", "integer"]},
        "method": {
            "type": "string",
            "enum": ["message/send", "message/stream", "tasks/get", "tasks/cancel"],
        },
        "params": {
            "type": "object",
            "description": "message/send and message/stream: {message: {role, parts, "
            "messageId, contextId?, taskId? (of a task waiting for input: resumes it)}, "
            "configuration?}; tasks/get and tasks/cancel: {id, contextId?, historyLength?}",
            "properties": {
                "message": {
                    "type": "object",
                    "required": ["role", "parts", "messageId"],
                    "properties": {
                        "role": {"type": "string", "enum": ["user", "agent"]},
                        "parts": {"type": "array", "items": _PART},
                        "messageId": {"type": "string"},
                        "contextId": {"type": "string", "description": "the thread's id"},
                        "taskId": {"type": "string", "description": "an input-required task"},
                    },
                },
                "id": {"type": "string", "description": "the task's (run's) id"},
                "contextId": {"type": "string"},
                "historyLength": {"type": "integer", "minimum": 0, "maximum": 10},
            },
        },
    },
}
_RPC_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
}
_ID = {"type": ["string", "integer", "null"]}
_RESPONSE = {
    "type": "object",
    "required": ["jsonrpc"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": _ID,
        "result": {"type": "object", "description": "A Task"},
        "error": _RPC_ERROR,
    },
}

_ERROR = {
    "type": "object",
    "title": "JSONRPCErrorResponse",
    "required": ["jsonrpc", "error"],
    "properties": {"jsonrpc": {"type": "string", "enum": ["2.0"]}, "id": _ID, "error": _RPC_ERROR},
}

RPC_OPENAPI: dict[str, Any] = {
    JSONRPC_ERROR: _ERROR,
    "summary": "A2A JSON-RPC",
    "description": "The Agent-to-Agent protocol's JSON-RPC binding: message/send, "
    "message/stream (SSE of JSON-RPC responses), tasks/get, tasks/cancel. contextId is "
    "the thread's id, a task is a run. Errors are JSON-RPC errors in the envelope.",
    "requestBody": {"required": True, "content": {"application/json": {"schema": _ENVELOPE}}},
    "responses": {
        "200": {
            "description": "A JSON-RPC response; for message/stream an SSE stream of them",
            "content": {
                "application/json": {"schema": _RESPONSE},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    },
}
