"""GET /openapi.json: FastAPI's document, corrected to say what we actually answer.

Every error is {"detail": "<message>"} with a string, as in LangGraph Platform's own spec
(its ErrorResponse) and as the SDK reads it (`langgraph_sdk.errors` takes `detail` only
when it is a string): FastAPI's array-shaped HTTPValidationError is replaced. Routes
answer errors through shared layers (limits, the service, the stores), so the error
statuses are added here by rule rather than on each route.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import custom, mcp

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "ErrorResponse",
    "description": "Every error the server answers.",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "What went wrong, and where"}},
}

WHY = {
    400: "The request cannot be carried out as given (e.g. a state update the graph refuses)",
    404: "Something the request names does not exist",
    409: "The resource's state does not allow this now (e.g. a thread that is busy)",
    413: "The body is larger than BROKER_MAX_BODY_BYTES",
    422: "A field is invalid, or holds what storage cannot keep (NUL, lone surrogates, "
    "integers beyond 64 bits, nesting deeper than 128 levels); `detail` names it",
    503: "A store the broker runs on (Postgres, SQLite or Redis) is unreachable",
}

# Operations that touch no store, and those that answer no 4xx beyond a bad parameter.
_STORE_FREE = {("get", "/info")}
_HEALTH = {("get", "/info"), ("get", "/ok")}

# Success statuses a route answers besides its default one.
_ALSO: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/threads/{thread_id}/runs/{run_id}/cancel"): {202: "Cancel requested (no wait)"},
    ("patch", "/threads/{thread_id}"): {204: "Patched (Prefer: return=minimal)"},
}


# An operation's extension naming the JSON-RPC error body it answers besides {"detail"}
# (A2A); consumed when the document is built.
JSONRPC_ERROR = "x-jsonrpc-error"


def methods_at(app: FastAPI, path: str) -> list[str]:
    """The methods the documented paths most literally matching `path` answer (for
    /threads/x/runs/wait those of …/runs/wait, not of …/runs/{run_id})."""
    matching = [
        (template.count("{"), item)
        for template, item in app.openapi().get("paths", {}).items()
        if _template(template).fullmatch(path)
    ]
    if not matching:
        return []
    fewest = min(params for params, _ in matching)
    return sorted({m.upper() for params, item in matching if params == fewest for m in item})


@functools.cache
def _template(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)))


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, routes=custom.served(app), description=app.description
    )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorResponse"] = ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            _complete(method, path, operation)
    for path in mcp.PATHS:  # a transport, not a FastAPI route: described by hand
        if any(getattr(route, "path", None) == path for route in app.router.routes):
            schema["paths"][path] = mcp.path_item(path)
    return schema


def _complete(method: str, path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if path.endswith("/stream"):
        responses["200"]["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    for status, description in _ALSO.get((method, path), {}).items():
        responses[str(status)] = {"description": description}
    rpc_error = operation.pop(JSONRPC_ERROR, None)
    for status in _errors(method, path, operation):
        schema: dict[str, Any] = {"$ref": "#/components/schemas/ErrorResponse"}
        if rpc_error is not None and status in (400, 404, 409):  # or the protocol's
            schema = {"anyOf": [schema, rpc_error]}
        responses[str(status)] = {
            "description": WHY[status],
            "content": {"application/json": {"schema": schema}},
        }


def _errors(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    statuses = [422]  # any parameter (even one the route ignores) is checked at the edge
    if (method, path) not in _STORE_FREE:
        statuses.append(503)
    if "requestBody" in operation:
        statuses.append(413)
    if (method, path) not in _HEALTH:
        statuses += [400, 404, 409]
    return sorted(statuses)
