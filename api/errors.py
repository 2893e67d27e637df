"""Every error leaves as {"detail": "<message>"} with the contract's status code."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api import openapi
from api.responses import JSON
from broker.errors import BrokerError, StoreUnavailable

log = logging.getLogger(__name__)


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSON({"detail": detail}, status_code=status, headers=headers)


async def _broker_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BrokerError)
    return _detail(exc.status_code, exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(openapi.methods_at(request.app, request.url.path))
    return _detail(exc.status_code, str(exc.detail), headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # GET /threads/{id}/runs/wait reaches GET …/runs/{run_id} and fails there on `wait`:
    # the path is POST …/runs/wait's, so what is wrong is the method.
    allowed = openapi.methods_at(request.app, request.url.path)
    if allowed and request.method not in allowed:
        return _detail(405, "Method Not Allowed", {"Allow": ", ".join(allowed)})
    return _detail(422, describe(exc.errors()))


def describe(errors: Any) -> str:
    """One readable line per problem: where it is and what is wrong."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            return "Invalid JSON in request body"
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "Invalid request"


async def _unavailable(_: Request, exc: Exception) -> Response:
    """Only a store's own adapter raises this, naming itself: anything else is a 500."""
    assert isinstance(exc, StoreUnavailable)
    log.warning("%s", exc.detail)
    return JSON({"detail": exc.detail}, status_code=503, headers={"Retry-After": "1"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(BrokerError, _broker_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreUnavailable, _unavailable)
