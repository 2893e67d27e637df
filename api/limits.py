"""What input the API accepts at all, checked once at the edge before any route runs.

Storage refuses some JSON that parses fine: Postgres JSONB has no NUL (\\u0000) and no
lone surrogates, our encoder (orjson) no integers beyond 64 bits, no non-finite floats
and no nesting past 255 levels (a stored body sits a few levels deeper than it came).
So every request body is decoded once here, with the parser FastAPI itself uses (what we
check is exactly what the route will see), and walked; path and query parameters are
checked by `checked_params`. Both answer 422 naming the field; a body over
BROKER_MAX_BODY_BYTES is refused with 413 while it is read, never buffered past it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.responses import JSON
from broker.errors import Invalid

MAX_DEPTH = 128  # LangGraph states nest; this leaves room below orjson's 255
INT_BOUND = 2**63  # |n| must stay below it: a signed 64-bit integer (BIGINT, orjson)
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored, if it cannot."""
    found = _UNSTORABLE_TEXT.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL (\\u0000)"
    return "must not contain a lone surrogate (\\ud800-\\udfff)"


def _number_problem(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not -INT_BOUND < value < INT_BOUND:
        return "integer out of range (|n| must be below 2^63)"
    if isinstance(value, float) and not math.isfinite(value):
        return "number out of range"
    return None


def _where(path: tuple[str | int, ...]) -> str:
    """The field as our 422s name body fields (`metadata.tags[2]`; the whole body: `body`)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "body"


def body_problem(document: Any) -> str | None:
    """The first field of a decoded body storage would refuse, with why (iterative: a
    hostile body may nest deeper than Python's stack)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return f"{_where(path[:3])}…: nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, str):
            problem = text_problem(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if problem := text_problem(key):
                    return f"{_where(path)}: key {problem}"
                stack.append((item, (*path, key)))
            continue
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
            continue
        else:
            problem = _number_problem(value)
        if problem:
            return f"{_where(path)}: {problem}"
    return None


def _decode(body: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def _is_json(headers: Headers) -> bool:
    """Whether FastAPI will decode the body as JSON (no content type, or a JSON one)."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return not kind or kind == "application/json" or kind.endswith("+json")


class _TooLarge(Exception):
    pass


class InputLimits:
    """Pure ASGI middleware: bounded body reading, then one JSON decode and walk."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        try:
            body, disconnected = await self._read(receive)
        except _TooLarge:
            await self._too_large(scope, receive, send)
            return
        if disconnected:
            return
        if body and _is_json(headers) and (problem := _json_problem(body)):
            await _refusal(scope["path"], problem)(scope, receive, send)
            return
        await self.app(scope, _replaying(body, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge  # stop reading: the rest is never buffered
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"body: larger than BROKER_MAX_BODY_BYTES ({self.max_body_bytes} bytes)"
        await JSON({"detail": detail}, status_code=413)(scope, receive, send)


def _refusal(path: str, problem: str) -> JSON:
    """422 with `detail`; on the JSON-RPC endpoints (MCP, A2A) the protocol's own error
    in a 400 instead: -32700 for a body that does not parse, -32602 for one storage
    would refuse."""
    if path.startswith("/a2a/") or path in ("/mcp", "/mcp/"):
        code = -32700 if problem.startswith(_UNPARSABLE) else -32602
        error = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": problem}}
        return JSON(error, status_code=400)
    return JSON({"detail": problem}, status_code=422)


_UNPARSABLE = "Invalid JSON"


def _json_problem(body: bytes) -> str | None:
    try:
        document = _decode(body)
    except RecursionError:
        return f"body: nested deeper than {MAX_DEPTH} levels"
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return f"{_UNPARSABLE} in request body ({exc})"
    return body_problem(document)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """Hands the app the body already read, then the client's later messages (disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def checked_params(request: HTTPConnection) -> None:
    """An app-wide dependency: path and query parameters reach storage too."""
    params = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in params:
        if isinstance(value, str) and (problem := text_problem(value)):
            raise Invalid(f"{name}: {problem}")
