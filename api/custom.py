"""http.app: the operator's Starlette or FastAPI app, served together with ours.

As LangGraph documents custom routes and middleware:
- its routes are given priority over the built-in ones: a route of its shadows ours for
  its method and path (other methods of that path still reach ours, since a router
  prefers any full match to a method mismatch);
- its middleware wraps every route, ours too: before auth by default, after it with
  `middleware_order: "auth_first"`;
- its lifespan (or startup/shutdown handlers) runs inside ours;
- a FastAPI app's routes appear in our OpenAPI (a plain Starlette route has no schema),
  while its own /openapi.json and docs pages are left out: ours describe both.
Its exception handlers apply to the types ours do not handle. In its routes,
`request.app` is the broker's app.

Custom auth covers custom routes only with `enable_custom_route_auth`: the auth
middleware asks `auth_exempt(scope)` before authenticating a request.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from broker.config import HttpConfig
from broker.graphs import load_typed

Lifespan = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class CustomRoutes:
    """The routes mounted in front of ours, and whether custom auth covers them."""

    routes: list[BaseRoute]
    authenticated: bool  # http.enable_custom_route_auth

    def serve(self, scope: Scope) -> bool:
        """Whether this request goes to a custom route (they come first, so a full match
        of theirs is the route that answers)."""
        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)


def auth_exempt(scope: Scope) -> bool:
    """For the auth middleware: this request goes to a custom route that
    `enable_custom_route_auth` leaves to the custom app's own checks."""
    custom: CustomRoutes | None = getattr(scope["app"].state, "custom_routes", None)
    return custom is not None and not custom.authenticated and custom.serve(scope)


def load(source: str, base: Path) -> Starlette:
    """The app `http.app` names; a failure stops the process with one line."""
    return load_typed(source, base, Starlette, "http.app", "a Starlette or FastAPI application")


def mount(app: FastAPI, http: HttpConfig, base: Path) -> None:
    """Serves `http.app` (if any) with `app`; call it after the built-in routers and
    the broker's own middleware are in place."""
    app.state.custom_routes = None
    if http.app is None:
        return
    custom = load(http.app, base)
    routes = [r for r in custom.routes if not _docs_page(custom, r)]
    app.router.routes[:0] = routes
    for exc_type, handler in custom.exception_handlers.items():
        app.exception_handlers.setdefault(exc_type, handler)
    if http.middleware_order == "auth_first":
        app.user_middleware.extend(custom.user_middleware)  # inside auth
    else:
        app.user_middleware[:0] = custom.user_middleware  # outside auth
    app.router.lifespan_context = _chained(app.router.lifespan_context, custom)  # type: ignore[assignment]
    app.state.custom_routes = CustomRoutes(routes, http.enable_custom_route_auth)


def served(app: FastAPI) -> list[BaseRoute]:
    """What the OpenAPI document describes: the custom routes, and ours but those they
    shadow (every method of the same path)."""
    custom: CustomRoutes | None = getattr(app.state, "custom_routes", None)
    if custom is None:
        return list(app.routes)
    theirs = custom.routes
    taken = {(_shape(r), m) for r in theirs for m in getattr(r, "methods", None) or ()}
    return [
        route
        for route in _flat(app.routes)
        if route in theirs
        or not isinstance(route, APIRoute)
        or not all((_shape(route), m) in taken for m in route.methods or ())
    ]


def _flat(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Routes, with those of included routers (which FastAPI keeps by reference) inline."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is None:
            yield route
        else:
            yield from _flat(included.routes)


def _shape(route: BaseRoute) -> str:
    """A path with its parameters unnamed: /threads/{id} and /threads/{thread_id} match."""
    return re.sub(r"{[^}]*}", "{}", getattr(route, "path", ""))


def _docs_page(custom: Starlette, route: BaseRoute) -> bool:
    if not isinstance(custom, FastAPI):
        return False
    pages = {
        custom.openapi_url,
        custom.docs_url,
        custom.redoc_url,
        custom.swagger_ui_oauth2_redirect_url,
    }
    return getattr(route, "path", None) in pages - {None}


def _chained(ours: Lifespan, custom: Starlette) -> Lifespan:
    theirs: Lifespan = custom.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Mapping[str, Any] | None]:
        async with ours(app) as our_state, theirs(custom) as their_state:
            state = {**(our_state or {}), **(their_state or {})}
            yield state or None

    return lifespan
