"""What a client sends can never cost a 500: each refusal is a 4xx {"detail"} naming the
field, on both topologies (Postgres refuses what SQLite would keep, and vice versa)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import BadRequestError

from tests.e2e.helpers import state_dict

JSON = {"content-type": "application/json"}
TEN_MIB = 10 * 1024 * 1024  # BROKER_MAX_BODY_BYTES' default


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


async def _refused(http: httpx.AsyncClient, body: bytes, status: int = 422) -> str:
    response = await http.post("/threads", content=body, headers=JSON)
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    return detail


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (rb'{"metadata": {"note": "a\u0000b"}}', "metadata.note: must not contain NUL"),
        (rb'{"metadata": {"a\u0000": 1}}', "metadata: key must not contain NUL"),
        (rb'{"metadata": {"note": "\ud800"}}', "metadata.note: must not contain a lone surrogate"),
        (rb'{"metadata": {"n": [9223372036854775808]}}', "metadata.n[0]: integer out of range"),
        (rb'{"metadata": {"n": -9223372036854775808}}', "metadata.n: integer out of range"),
        (rb'{"metadata": {"n": 1e400}}', "metadata.n: number out of range"),
        (rb'{"metadata": {"n": NaN}}', "Invalid JSON in request body"),
        (f'{{"metadata": {{"deep": {_nested(129)}}}}}'.encode(), "nested deeper than 128"),
        (_nested(5000).encode(), "body: nested deeper than 128"),
    ],
)
async def test_unstorable_json_is_422_naming_the_field(
    http: httpx.AsyncClient, body: bytes, detail: str
) -> None:
    assert detail in await _refused(http, body)


async def test_what_storage_keeps_is_kept(client: LangGraphClient) -> None:
    metadata: dict[str, Any] = {"big": 2**63 - 1, "small": -(2**63) + 1, "deep": [[[[]]]]}
    metadata["nested"] = json.loads(_nested(100))  # deep, but within the limit
    thread = await client.threads.create(metadata=metadata)
    assert (await client.threads.get(thread["thread_id"]))["metadata"] == metadata


async def test_nul_in_query_and_path_parameters_is_422(http: httpx.AsyncClient) -> None:
    tid = (await http.post("/threads", json={})).json()["thread_id"]
    response = await http.get(f"/threads/{tid}/runs", params={"status": "\x00"})
    assert response.status_code == 422
    assert response.json() == {"detail": "status: must not contain NUL (\\u0000)"}
    response = await http.get("/assistants/a%00b")
    assert (response.status_code, response.json()["detail"][:13]) == (422, "assistant_id:")


@pytest.mark.parametrize(
    ("query", "field"),
    [("offset=9223372036854775808", "offset"), ("limit=0", "limit"), ("offset=-1", "offset")],
)
async def test_paging_bounds_are_422(http: httpx.AsyncClient, query: str, field: str) -> None:
    tid = (await http.post("/threads", json={})).json()["thread_id"]
    response = await http.get(f"/threads/{tid}/runs?{query}")
    assert response.status_code == 422
    assert field in response.json()["detail"]
    response = await http.post("/threads/search", json={field: 2**63})
    assert response.status_code == 422 and field in response.json()["detail"]


async def test_after_seconds_is_bounded(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs", json={"assistant_id": "counter", "after_seconds": 1e12})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("after_seconds:")


async def test_a_ttl_past_a_century_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/threads", json={"ttl": {"ttl": 7e57, "strategy": "delete"}})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("ttl.ttl:")


async def test_a_webhook_that_is_not_http_is_422(http: httpx.AsyncClient) -> None:
    body = {"assistant_id": "counter", "webhook": "file:///etc/passwd"}
    response = await http.post("/runs", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("webhook:")
    assert "http" in response.json()["detail"]


async def test_a_bad_join_is_4xx_naming_what(client: LangGraphClient, server: str) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        tid, "counter", input={"count": 0, "log": []}, stream_resumable=True
    )
    await client.runs.join(tid, run["run_id"])
    url = f"/threads/{tid}/runs/{run['run_id']}/stream"
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.get(url, params={"stream_mode": "[bad"})
        assert (response.status_code, response.json()["detail"][:12]) == (422, "stream_mode:")
        response = await http.get(url, params={"stream_mode": "nope"})
        assert (response.status_code, response.json()["detail"][:12]) == (422, "stream_mode:")
        for bad in ("zzz", "1-x", "99999999999999999999-0", "1-2-3"):
            response = await http.get(url, headers={"Last-Event-ID": bad})
            assert response.status_code == 400, (bad, response.text)
            assert response.json()["detail"].startswith("Last-Event-ID:")
            assert "Retry-After" not in response.headers  # not an outage: the SDK won't retry


async def test_update_state_refused_by_the_graph_is_400(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "counter", input={"count": 0, "log": []})
    with pytest.raises(BadRequestError, match="nope"):
        await client.threads.update_state(tid, {"count": 1}, as_node="nope")
    with pytest.raises(BadRequestError):  # the reducer (list + int) raises inside the graph
        await client.threads.update_state(tid, {"log": 5}, as_node="one")
    assert (await client.threads.get(tid))["status"] == "idle"
    await client.threads.update_state(tid, {"count": 7}, as_node="three")  # still usable
    assert (await state_dict(client, tid))["values"]["count"] == 7


async def test_a_body_over_the_limit_is_413_while_read(http: httpx.AsyncClient) -> None:
    big = b'{"metadata": {"x": "' + b"a" * TEN_MIB + b'"}}'
    response = await http.post("/threads", content=big, headers=JSON)
    assert response.status_code == 413
    assert "BROKER_MAX_BODY_BYTES" in response.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield big[: TEN_MIB // 2]
        yield big[TEN_MIB // 2 :]

    response = await http.post("/threads", content=chunks(), headers=JSON)
    assert response.status_code == 413


async def test_405_names_the_allowed_methods(http: httpx.AsyncClient) -> None:
    tid = uuid.uuid4()
    response = await http.put(f"/threads/{tid}")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    assert response.json() == {"detail": "Method Not Allowed"}
    # GET reaches …/runs/{run_id} with run_id "wait": the path is POST …/runs/wait's.
    response = await http.get(f"/threads/{tid}/runs/wait")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


async def test_openapi_documents_the_errors_as_they_are(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorResponse"]["properties"]["detail"] == {
        "type": "string",
        "description": "What went wrong, and where",
    }
    responses = document["paths"]["/threads"]["post"]["responses"]
    assert {"400", "404", "409", "413", "422", "503"} <= set(responses)
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    assert responses["422"]["content"]["application/json"]["schema"] == error
