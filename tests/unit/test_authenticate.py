"""The authenticate middleware in-process: the parameters a handler names, what it may
return, and how its refusals answer."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Request
from langgraph_sdk import Auth

from api.auth.authenticate import AuthenticateMiddleware
from broker.users import User


def _app(auth: Auth) -> FastAPI:
    app = FastAPI()

    @app.post("/threads/{thread_id}/echo")
    async def echo(thread_id: str, request: Request) -> dict[str, Any]:
        user: User = request.scope["user"]
        return {"user": user.to_dict(), "body": await request.json()}

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(AuthenticateMiddleware, auth=auth)
    return app


async def _post(auth: Auth, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.post("/threads/t1/echo?x=1", json={"a": 1}, headers=headers)


async def test_the_handler_gets_the_parameters_it_names() -> None:
    auth = Auth()
    seen: dict[str, Any] = {}

    @auth.authenticate
    async def authenticate(
        authorization: str | None,
        path: str,
        method: str,
        path_params: dict[str, str],
        query_params: dict[str, str],
        headers: dict[bytes, bytes],
        body: Any,
    ) -> dict[str, Any]:
        seen.update(locals())
        return {"identity": "u1", "permissions": ["p"], "team": "x"}

    response = await _post(auth, {"Authorization": "Bearer t"})
    assert response.status_code == 200
    assert response.json() == {
        "user": {
            "identity": "u1",
            "display_name": "u1",
            "is_authenticated": True,
            "permissions": ["p"],
            "team": "x",
        },
        "body": {"a": 1},  # the route still reads the body the handler read
    }
    assert seen["authorization"] == "Bearer t"
    assert (seen["path"], seen["method"]) == ("/threads/t1/echo", "POST")
    assert seen["path_params"] == {"thread_id": "t1"}
    assert seen["query_params"] == {"x": "1"}
    assert seen["headers"][b"authorization"] == b"Bearer t"
    assert seen["body"] == {"a": 1}


async def test_a_string_is_the_identity() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate(request: Request) -> str:
        return "u2"

    assert (await _post(auth)).json()["user"]["identity"] == "u2"


async def test_refusals_answer_with_detail_and_never_500() -> None:
    auth = Auth()

    @auth.authenticate
    async def authenticate(authorization: str | None) -> str:
        if authorization == "Bearer forbidden":
            raise Auth.exceptions.HTTPException(403, "No", headers={"X-Why": "because"})
        if authorization == "Bearer nobody":
            return None  # type: ignore[return-value]  # a handler's bug: not a user
        raise RuntimeError("token service down")

    forbidden = await _post(auth, {"Authorization": "Bearer forbidden"})
    assert (forbidden.status_code, forbidden.json()) == (403, {"detail": "No"})
    assert forbidden.headers["x-why"] == "because"
    for token in ("Bearer nobody", "Bearer other"):
        refused = await _post(auth, {"Authorization": token})
        assert (refused.status_code, refused.json()) == (401, {"detail": "Unauthorized"})
    transport = httpx.ASGITransport(app=_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/ok")).status_code == 200  # health needs no token
