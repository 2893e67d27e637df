"""Authorization: the `@auth.on` handler for a resource and action decides, as
langgraph_sdk documents: the most specific registered one of (resource, action),
(resource, any), (any, action), then the global handler; none → allowed.

A handler gets `ctx` (AuthContext: user, permissions, resource, action) and `value`
(the request's payload as LangGraph's typed dicts shape it; a handler may change it,
e.g. stamp `metadata` on create, and the route uses what it left). It returns None or
True (allowed), False (403), or a filter on the resource's metadata, which the route
hands to storage to be applied in the query itself (`broker/storage/visibility.py`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from langgraph_sdk import Auth
from langgraph_sdk.auth.types import AuthContext
from starlette.requests import HTTPConnection

from api.auth.authenticate import USER
from broker import users
from broker.errors import BrokerError
from broker.models import RunRequest
from broker.storage.visibility import Filter, InvalidFilter, containment
from broker.users import User


class Forbidden(BrokerError):
    """Forbidden"""

    status_code = 403


class Refused(BrokerError):
    """What an authorization handler raised as Auth.exceptions.HTTPException."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code


class HandlerFailed(BrokerError):
    """An authorization handler failed: the request is refused (the operator's bug)."""

    status_code = 500


class Authorizer:
    """One request's authorizer: `await authorize(resource, action, value)` → filter."""

    def __init__(self, auth: Auth | None, user: User | None) -> None:
        self.auth, self.user = auth, user

    async def __call__(self, resource: str, action: str, value: dict[str, Any]) -> Filter | None:
        if self.auth is None:
            return None
        handler = _handler(self.auth, resource, action)
        if handler is None:
            return None
        if self.user is None:  # authenticated requests only reach here with a user
            raise Forbidden()
        ctx = AuthContext(
            permissions=list(self.user.permissions),
            user=self.user,
            resource=resource,  # type: ignore[arg-type]
            action=action,  # type: ignore[arg-type]
        )
        try:
            result = await handler(ctx=ctx, value=value)
        except Auth.exceptions.HTTPException as exc:
            raise Refused(exc.status_code, str(exc.detail)) from None
        return _filter(result, resource, action)


def _handler(auth: Auth, resource: str, action: str) -> Any:
    for key in ((resource, action), (resource, "*"), ("*", action)):
        if key in auth._handlers:
            return auth._handlers[key][-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


def _filter(result: Any, resource: str, action: str) -> Filter | None:
    if result is None or result is True:
        return None
    if result is False:
        raise Forbidden()
    if not isinstance(result, dict):
        raise HandlerFailed(
            f"auth handler for {resource}.{action} returned {type(result).__name__}; "
            "expected None, a bool or a filter dict"
        )
    try:
        containment(result)  # refused now, not as a query that matches nothing
    except InvalidFilter as exc:
        raise HandlerFailed(str(exc)) from None
    return result


async def _authorizer(request: Request) -> Authorizer:
    return authorizer_of(request)


def authorizer_of(connection: HTTPConnection) -> Authorizer:
    """The authorizer of a request or a WebSocket (whose routes take no dependencies)."""
    auth: Auth | None = getattr(connection.app.state, "auth", None)
    return Authorizer(auth, connection.scope.get(USER))


AuthorizeDep = Annotated[Authorizer, Depends(_authorizer)]


def user_of(request: Request) -> User | None:
    user = request.scope.get(USER)
    return user if isinstance(user, User) else None


def stamped(value: dict[str, Any]) -> dict[str, Any]:
    """The `metadata` a handler left in `value` (it may stamp an owner): what is stored."""
    metadata = value.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise HandlerFailed(f"auth handler set metadata to {type(metadata).__name__}, not a dict")
    return metadata


async def authorize_run(
    authorize: Authorizer, thread_id: UUID | None, request: RunRequest
) -> tuple[RunRequest, Filter | None]:
    """`threads.create_run` for a new run: the request as the handler left its metadata,
    carrying its user in `configurable` (as LangGraph does), and the filter its thread
    must pass."""
    value: dict[str, Any] = {
        "thread_id": thread_id,
        "assistant_id": request.assistant_id,
        "status": "pending",
        "metadata": dict(request.metadata),
        "prevent_insert_if_inflight": request.multitask_strategy == "reject",
        "multitask_strategy": str(request.multitask_strategy),
        "if_not_exists": request.if_not_exists,
        "after_seconds": request.after_seconds or 0,
        "kwargs": {
            "input": request.input,
            "command": request.command,
            "config": request.config,
            "context": request.context,
        },
    }
    filter = await authorize("threads", "create_run", value)
    config = request.config
    if authorize.user is not None:
        configurable = {**(config.get("configurable") or {}), **users.configurable(authorize.user)}
        config = {**config, "configurable": configurable}
    return replace(request, metadata=stamped(value), config=config), filter
