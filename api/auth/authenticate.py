"""Authentication: the `@auth.authenticate` handler runs on every request (but the few
that reveal nothing: health, server info, the API's own description), as a pure ASGI
middleware, so streaming responses are covered like any other.

The handler gets the parameters it names (`request`, `body`, `path`, `method`,
`path_params`, `query_params`, `headers`, `authorization`), as langgraph_sdk documents.
It returns the user (a string identity, a dict with `identity`, or an object with one)
or raises `Auth.exceptions.HTTPException`: that status and `{"detail"}`. Anything else
it raises refuses the request with 401 — an auth failure is never a 500.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping
from typing import Any

from langgraph_sdk import Auth
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.custom import auth_exempt
from api.responses import JSON
from broker.users import User

log = logging.getLogger(__name__)

# LangGraph's server answers these without authentication (the JS server: /info too).
OPEN_PATHS = frozenset({"/ok", "/info", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
USER = "user"  # the scope key Starlette's `request.user` reads


class Refused(Exception):
    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None) -> None:
        self.status, self.detail, self.headers = status, detail, dict(headers or {})


class AuthenticateMiddleware:
    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.handler = auth._authenticate_handler
        wanted = inspect.signature(self.handler).parameters if self.handler else {}
        self.wanted = set(wanted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.handler is not None and not auth_exempt(scope):
            await self._socket(scope, receive, send)
            return
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or self.handler is None
            or auth_exempt(scope)  # a custom route its own app guards (http section)
        ):
            await self.app(scope, receive, send)
            return
        handler_receive = receive
        if self.wanted & {"body", "request"}:
            # Both the handler and the route read the body: each gets its own replay.
            body = await _read_body(receive)
            handler_receive, receive = _replay(body, receive), _replay(body, receive)
        try:
            user = await self._authenticate(Request(scope, handler_receive))
        except Refused as refused:
            response = JSON({"detail": refused.detail}, refused.status, refused.headers)
            await response(scope, receive, send)
            return
        scope[USER] = user
        await self.app(scope, receive, send)

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake is authenticated as a GET without body; refused, the
        socket is closed with 1008 (policy violation) before it is accepted."""
        handshake = Request({**scope, "type": "http", "method": "GET"}, _no_body)
        try:
            user = await self._authenticate(handshake)
        except Refused as refused:
            await send({"type": "websocket.close", "code": 1008, "reason": refused.detail[:120]})
            return
        scope[USER] = user
        await self.app(scope, receive, send)

    async def _authenticate(self, request: Request) -> User:
        assert self.handler is not None
        try:
            kwargs = {name: await _argument(name, request) for name in self.wanted}
            return normalise(await self.handler(**kwargs))
        except Auth.exceptions.HTTPException as exc:
            raise Refused(exc.status_code, str(exc.detail), exc.headers) from None
        except Exception as exc:
            log.warning("authenticate handler failed: %s: %s", type(exc).__name__, exc)
            raise Refused(401, "Unauthorized", None) from None


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _argument(name: str, request: Request) -> Any:
    if name == "request":
        return request
    if name == "body":
        raw = await request.body()
        return json.loads(raw) if raw else None
    if name == "path":
        return request.url.path
    if name == "method":
        return request.method
    if name == "path_params":
        return _path_params(request.scope)
    if name == "query_params":
        return dict(request.query_params)
    if name == "headers":
        return dict(request.scope["headers"])  # bytes → bytes, as LangGraph passes them
    if name == "authorization":
        return request.headers.get("authorization")
    raise TypeError(f"authenticate handler parameter '{name}' is not one LangGraph passes")


def _path_params(scope: Scope) -> dict[str, Any]:
    """The route's parameters: authentication runs before routing, so match it here."""
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, child = route.matches(scope)
        if match == Match.FULL:
            return {k: str(v) for k, v in child.get("path_params", {}).items()}
    return {}


def normalise(result: Any) -> User:
    """A string identity, a mapping with `identity`, or an object with `identity`."""
    if isinstance(result, str):
        return User({"identity": result})
    if isinstance(result, Mapping) and isinstance(result.get("identity"), str):
        return User(result)
    identity = getattr(result, "identity", None)
    if isinstance(identity, str):
        fields = {
            name: getattr(result, name)
            for name in ("display_name", "is_authenticated", "permissions")
            if hasattr(result, name)
        }
        return User({**fields, "identity": identity})
    raise TypeError(f"authenticate returned {type(result).__name__}, not a user with an identity")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then what the connection says next (its disconnect)."""
    replay: list[Message] = [{"type": "http.request", "body": body}]

    async def replayed() -> Message:
        return replay.pop() if replay else await receive()

    return replayed
