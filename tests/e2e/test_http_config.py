"""langgraph.json's http section against real servers (tests/custom/langgraph.json):
a custom FastAPI app, CORS, disable_threads and configurable headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_database
from tests.processes import start_api, start_worker
from tests.services import Services

CUSTOM = Path(__file__).parent.parent / "custom" / "langgraph.json"
ALLOWED = "https://allowed.example"


@pytest.fixture(scope="session")
def custom_server(
    services: Services, broker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`broker api` + `broker worker` serving tests/custom, on their own database (its
    graphs' system assistants stay out of the other tests' counts)."""
    logs = tmp_path_factory.mktemp("broker-custom")
    for database in fresh_database(services):
        prefix = f"{broker_env['BROKER_REDIS_PREFIX']}-custom"
        env = {**broker_env, "DATABASE_URI": database, "BROKER_REDIS_PREFIX": prefix}
        api, url = start_api(env, logs, CUSTOM)
        worker = start_worker(env, logs, CUSTOM)
        try:
            yield url
        finally:
            worker.stop()
            api.stop()


@pytest.fixture
def http(custom_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=custom_server, timeout=30) as client:
        yield client


def test_custom_route_serves_with_its_lifespan_and_middleware(http: httpx.Client) -> None:
    hello = http.get("/hello")
    assert hello.json() == {"hello": "world", "lifespan_ran": True}
    assert http.get("/ok").headers["x-custom"] == "from-webapp"  # its middleware wraps ours


def test_custom_routes_shadow_ours_per_method(http: httpx.Client) -> None:
    assert http.get("/info").json() == {"served_by": "webapp"}
    assert http.get("/runs/batch").json() == {"served_by": "webapp"}
    assert http.post("/runs/batch", json=[]).json() == []  # POST is still the broker's


def test_custom_routes_are_in_the_openapi(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert "get" in paths["/hello"]
    assert set(paths["/runs/batch"]) == {"get", "post"}
    assert "/runs/wait" in paths


def test_preflight_from_an_allowed_origin_passes(http: httpx.Client) -> None:
    response = http.options("/runs/wait", headers=_preflight(ALLOWED, "content-type,x-user-id"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-max-age"] == "60"
    simple = http.get("/ok", headers={"Origin": ALLOWED})
    assert simple.headers["access-control-allow-origin"] == ALLOWED
    exposed = simple.headers["access-control-expose-headers"].lower()
    assert "x-custom" in exposed and "content-location" in exposed


def test_preflight_from_another_origin_is_refused(http: httpx.Client) -> None:
    response = http.options("/runs/wait", headers=_preflight("https://elsewhere.example"))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    other = http.get("/ok", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_a_method_not_allowed_is_refused_at_preflight(http: httpx.Client) -> None:
    response = http.options("/runs/wait", headers=_preflight(ALLOWED, method="DELETE"))
    assert response.status_code == 400


def test_disabled_threads_are_not_served(http: httpx.Client) -> None:
    assert http.post("/threads", json={}).status_code == 404
    assert http.post("/threads/search", json={}).status_code == 404
    assert http.get("/threads/00000000-0000-0000-0000-000000000000").status_code == 404
    assert not any(
        p.startswith("/threads/search") for p in http.get("/openapi.json").json()["paths"]
    )


def test_configurable_headers_reach_the_run(http: httpx.Client) -> None:
    headers = {
        "x-user-id": "user-7",
        "x-user-secret": "excluded by pattern",
        "x-tenant-id": "never passed on",
        "x-other": "not included",
    }
    response = http.post("/runs/wait", json={"assistant_id": "echo", "input": {}}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"seen": {"x-user-id": "user-7"}}


def test_the_graph_description_reaches_its_assistant(http: httpx.Client) -> None:
    (assistant,) = http.post("/assistants/search", json={"graph_id": "echo"}).json()
    assert assistant["description"] == "Reports the request headers its run was given"


def test_default_cors_allows_any_origin(server: str) -> None:
    """Without a cors section, as LangGraph's servers: any origin (both backends)."""
    response = httpx.options(f"{server}/runs/wait", headers=_preflight("https://any.example"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://any.example")


def _preflight(origin: str, headers: str = "content-type", method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def test_disabled_store_is_not_served(http: httpx.Client) -> None:
    body = {"namespace": ["a"], "key": "k", "value": {"x": 1}}
    assert http.put("/store/items", json=body).status_code == 404
    assert http.post("/store/items/search", json={}).status_code == 404
    assert http.post("/store/namespaces", json={}).status_code == 404
    assert not any(p.startswith("/store") for p in http.get("/openapi.json").json()["paths"])
