"""The http section in-process: configurable headers, CORS options, the custom app's
loading, priority and auth exemption (no store needed: no request reaches the runtime)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers

from api import cors
from api.app import create_app
from api.custom import auth_exempt, load
from api.headers import HeaderSelector
from broker.config import CorsConfig, GraphSource, HeaderPatterns, HttpConfig, ProjectConfig
from broker.errors import ConfigError
from broker.graphs import GraphRegistry
from broker.settings import Settings

CUSTOM = Path(__file__).parent.parent / "custom"

HEADERS = Headers(
    {
        "x-user-id": "u",
        "x-user-secret": "s",
        "x-api-key": "k",
        "x-tenant-id": "t",
        "x-service-key": "v",
        "user-agent": "ua",
        "authorization": "Bearer z",
    }
)


def test_default_headers_are_x_and_user_agent_without_secrets() -> None:
    assert HeaderSelector(None).select(HEADERS) == {
        "x-user-id": "u",
        "x-user-secret": "s",
        "user-agent": "ua",
    }


def test_includes_replace_the_default_and_excludes_win() -> None:
    patterns = HeaderPatterns(
        includes=["X-User-*", "authorization", "x-api-key"], excludes=["*secret*"]
    )
    assert HeaderSelector(patterns).select(HEADERS) == {
        "x-user-id": "u",
        "authorization": "Bearer z",
    }


def test_patterns_know_only_the_star() -> None:
    patterns = HeaderPatterns.model_validate({"includes": ["x-user-.."]})
    assert HeaderSelector(patterns).select(HEADERS) == {}


def test_cors_default_allows_any_origin_and_exposes_the_sdk_headers() -> None:
    options = cors.options(None)
    assert options["allow_origins"] == ["*"]
    assert set(options["expose_headers"]) == {"content-location", "x-pagination-total"}


def test_cors_configured() -> None:
    only_regex = cors.options(CorsConfig(allow_origin_regex=r"https://.*\.example"))
    assert only_regex["allow_origins"] == [] and only_regex["allow_methods"] == ["*"]
    listed = cors.options(
        CorsConfig(allow_origins=["https://a.example"], expose_headers=["X-Mine"])
    )
    assert listed["expose_headers"] == ["X-Mine", "content-location", "x-pagination-total"]


def test_a_custom_app_that_fails_to_import_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import not_installed_anywhere\n")
    with pytest.raises(ConfigError) as caught:
        load("./broken.py:app", tmp_path)
    message = str(caught.value)
    assert "./broken.py" in message and "ModuleNotFoundError" in message and "\n" not in message


def test_a_custom_app_must_be_an_asgi_application(tmp_path: Path) -> None:
    (tmp_path / "notapp.py").write_text("app = 42\n")
    with pytest.raises(ConfigError, match="int, not a Starlette or FastAPI application"):
        load("./notapp.py:app", tmp_path)


def _app(http: HttpConfig) -> httpx.AsyncClient:
    project = ProjectConfig(
        CUSTOM / "langgraph.json", {"echo": GraphSource("./echo.py:graph")}, http=http
    )
    app = create_app(Settings(), GraphRegistry({}), project=project)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://broker")


async def test_custom_routes_come_first_and_show_in_openapi() -> None:
    async with _app(HttpConfig(app="./webapp.py:app")) as client:
        assert (await client.get("/info")).json() == {"served_by": "webapp"}
        hello = await client.get("/hello")
        assert hello.headers["x-custom"] == "from-webapp"
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/hello" in paths and "/assistants/search" in paths
        assert set(paths["/runs/batch"]) == {"get", "post"}  # theirs and ours
        assert (await client.get("/docs")).status_code == 200  # ours, not the webapp's


@pytest.mark.parametrize("authenticated", [False, True])
def test_auth_exemption_follows_enable_custom_route_auth(authenticated: bool) -> None:
    http = HttpConfig(app="./webapp.py:app", enable_custom_route_auth=authenticated)
    project = ProjectConfig(CUSTOM / "langgraph.json", {}, http=http)
    app = create_app(Settings(), GraphRegistry({}), project=project)

    def scope(method: str, path: str) -> dict[str, object]:
        return {"type": "http", "method": method, "path": path, "app": app, "root_path": ""}

    assert auth_exempt(scope("GET", "/hello")) is not authenticated
    assert auth_exempt(scope("GET", "/runs/batch")) is not authenticated  # shadowed: theirs
    assert auth_exempt(scope("POST", "/runs/batch")) is False  # ours
    assert auth_exempt(scope("GET", "/threads/x")) is False


async def test_disable_meta_keeps_a_bare_ok() -> None:
    async with _app(HttpConfig(disable_meta=True)) as client:
        assert (await client.get("/ok")).json() == {"ok": True}
        for path in ("/info", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 404, path


@pytest.mark.parametrize("disabled", [False, True])
async def test_disable_mcp_and_a2a_remove_them(disabled: bool) -> None:
    http = HttpConfig(disable_mcp=disabled, disable_a2a=disabled)
    async with _app(http) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        served = {"/mcp", "/mcp/", "/a2a/{assistant_id}", "/.well-known/agent-card.json"}
        assert (served & set(paths)) == (set() if disabled else served)
        if disabled:
            for method, path in [("POST", "/mcp"), ("POST", "/mcp/"), ("POST", "/a2a/x")]:
                assert (await client.request(method, path, json={})).status_code == 404
            card = await client.get("/.well-known/agent-card.json?assistant_id=x")
            assert card.status_code == 404
