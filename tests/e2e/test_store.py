"""The Store API through the real SDK, on both topologies: the five store methods,
bad input named, semantic search by the fake embedding (tests/graphs/embeddings.py),
TTL, and a graph that remembers across threads through `runtime.store`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import UnprocessableEntityError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.storage.tables import store_items


@pytest.fixture
def root() -> str:
    return f"e{uuid.uuid4().hex[:10]}"


async def test_the_five_store_methods(client: LangGraphClient, root: str) -> None:
    await client.store.put_item([root, "prefs"], "color", {"favorite": "green", "n": 3})
    await client.store.put_item([root, "prefs", "deep"], "size", {"n": 9})
    item = await client.store.get_item([root, "prefs"], "color")
    assert item["namespace"] == [root, "prefs"] and item["key"] == "color"
    assert item["value"] == {"favorite": "green", "n": 3}
    assert item["created_at"] and item["updated_at"]
    found = await client.store.search_items([root], filter={"n": {"$gt": 5}})
    assert [(i["namespace"], i["key"]) for i in found["items"]] == [
        ([root, "prefs", "deep"], "size")
    ]
    listed = await client.store.list_namespaces(prefix=[root])
    assert listed["namespaces"] == [[root, "prefs"], [root, "prefs", "deep"]]
    shallow = await client.store.list_namespaces(prefix=[root], max_depth=2)
    assert shallow["namespaces"] == [[root, "prefs"]]
    await client.store.delete_item([root, "prefs"], "color")
    assert await client.store.get_item([root, "prefs"], "color") is None
    page = await client.store.search_items([root], limit=1, offset=0)
    assert [i["key"] for i in page["items"]] == ["size"]


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        (
            "PUT",
            "/store/items",
            {"namespace": [], "key": "k", "value": {}},
            "namespace: must not be empty",
        ),
        (
            "PUT",
            "/store/items",
            {"namespace": ["a.b"], "key": "k", "value": {}},
            "namespace: label 'a.b'",
        ),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": [1]}, "value: "),
        ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}, "ttl: "),
        ("DELETE", "/store/items", {"key": "k"}, "namespace: must not be empty"),
        (
            "POST",
            "/store/items/search",
            {"filter": {"n": {"$near": 1}}},
            "filter.n: unknown operator",
        ),
        ("POST", "/store/items/search", {"namespace_prefix": ["x."]}, "namespace_prefix: label"),
        ("POST", "/store/items/search", {"limit": 0}, "limit: "),
        ("POST", "/store/namespaces", {"suffix": ["a.b"]}, "suffix: label"),
    ],
)
async def test_bad_input_names_the_field(
    server: str, method: str, path: str, body: dict[str, Any], detail: str
) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)


async def test_get_names_a_bad_namespace(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        missing = await http.get("/store/items", params={"key": "k"})
        assert missing.status_code == 422 and missing.json()["detail"].startswith("namespace")


async def test_sdk_refusals_arrive_as_422(client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError):
        await client.store.search_items(["a"], filter={"n": {"$regex": "x"}})


async def test_search_with_a_query_ranks_by_the_embedding(
    client: LangGraphClient, root: str
) -> None:
    texts = {
        "cat": "cats purr and sleep in the sun",
        "dog": "dogs bark at the mail carrier",
        "soup": "tomato soup with fresh basil",
    }
    for key, text in texts.items():
        await client.store.put_item([root, "notes"], key, {"text": text})
    await client.store.put_item([root, "notes"], "plain", {"text": "tomato soup"}, index=False)
    found = (await client.store.search_items([root], query="a hot tomato soup", limit=3))["items"]
    assert found[0]["key"] == "soup"
    assert "plain" not in [item["key"] for item in found]
    scores = [float(item["score"] or 0.0) for item in found]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    again = (await client.store.search_items([root], query="a hot tomato soup", limit=3))["items"]
    assert [i["key"] for i in again] == [i["key"] for i in found]


async def test_an_item_with_a_ttl_expires(
    client: LangGraphClient, engine: AsyncEngine, root: str
) -> None:
    await client.store.put_item([root], "brief", {"x": 1}, ttl=0.002)  # type: ignore[arg-type]
    await client.store.put_item([root], "stays", {"x": 2})
    for _ in range(100):  # reads that would not refresh it
        if await client.store.get_item([root], "brief", refresh_ttl=False) is None:
            break
        await asyncio.sleep(0.05)
    assert await client.store.get_item([root], "brief") is None
    keys = [item["key"] for item in (await client.store.search_items([root]))["items"]]
    assert keys == ["stays"]
    # The sweeper (every 0.6 s here: sweep_interval_minutes 0.01) deletes the row.
    for _ in range(100):
        if await _rows(engine, root) == 1:
            break
        await asyncio.sleep(0.05)
    assert await _rows(engine, root) == 1


async def _rows(engine: AsyncEngine, root: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(store_items).where(store_items.c.prefix == root)
        return int((await conn.execute(query)).scalar_one())


async def test_a_graph_remembers_across_threads(client: LangGraphClient, root: str) -> None:
    first, second = await client.threads.create(), await client.threads.create()
    await client.runs.wait(
        first["thread_id"], "memory", input={"user": root, "remember": "likes tea"}
    )
    result: Any = await client.runs.wait(second["thread_id"], "memory", input={"user": root})
    assert result["memories"] == ["likes tea", "likes tea"]  # async node's and sync node's
    assert result["runtime_sees"] == 2
    stateless: Any = await client.runs.wait(None, "memory", input={"user": root, "remember": "x"})
    assert "x" in stateless["memories"]
    item = await client.store.get_item(["memories", root], "likes tea")
    assert item["value"] == {"text": "likes tea"}
