"""Custom auth (LangGraph's owner-only example, tests/graphs/auth.py) through the SDK.

The matrix: every endpoint, asked by B about A's thread, run or assistant, answers as
if it did not exist (the same status as for an id nobody has), and A's data is left as
it was. Each new endpoint joins it with one row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import httpx
import httpx2
import pytest
from langgraph_sdk.client import LangGraphClient
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.auth.conftest import Users

GRAPHS = Path(__file__).parent.parent / "graphs"


@dataclass(frozen=True)
class Owned:
    thread_id: str
    run_id: str
    assistant_id: str
    cron_id: str


async def _drain(stream: AsyncIterator[Any] | Awaitable[AsyncIterator[Any]]) -> list[Any]:
    if isinstance(stream, Awaitable):  # threads.join_stream is a coroutine
        stream = await stream
    return [part async for part in stream]


Op = Callable[[LangGraphClient, Owned], Awaitable[Any]]
YEARLY = "0 0 1 1 *"
_RESPOND = {"id": 1, "method": "input.respond", "params": {"interrupt_id": "x", "response": 1}}


async def _protocol_events(client: LangGraphClient, thread_id: str) -> None:
    """The request `client.threads.stream` opens its events with (refused: no stream)."""
    path = f"/threads/{thread_id}/stream/events"
    response = await client.http.client.post(path, json={"channels": ["values"]})
    response.raise_for_status()


MATRIX: list[tuple[str, Op]] = [
    ("threads.get", lambda c, o: c.threads.get(o.thread_id)),
    ("threads.update", lambda c, o: c.threads.update(o.thread_id, metadata={"x": 1})),
    ("threads.delete", lambda c, o: c.threads.delete(o.thread_id)),
    ("threads.copy", lambda c, o: c.threads.copy(o.thread_id)),
    ("threads.get_state", lambda c, o: c.threads.get_state(o.thread_id)),
    (
        "threads.update_state",
        lambda c, o: c.threads.update_state(o.thread_id, {"user_id": "mallory"}),
    ),
    ("threads.get_history", lambda c, o: c.threads.get_history(o.thread_id)),
    ("threads.join_stream", lambda c, o: _drain(c.threads.join_stream(o.thread_id))),
    ("threads.stream events", lambda c, o: _protocol_events(c, o.thread_id)),
    (
        "threads.stream input.respond",
        lambda c, o: c.http.post(f"/threads/{o.thread_id}/commands", json=_RESPOND),
    ),
    ("runs.create", lambda c, o: c.runs.create(o.thread_id, "whoami")),
    ("runs.stream", lambda c, o: _drain(c.runs.stream(o.thread_id, "whoami"))),
    ("runs.wait", lambda c, o: c.runs.wait(o.thread_id, "whoami")),
    ("runs.list", lambda c, o: c.runs.list(o.thread_id)),
    ("runs.get", lambda c, o: c.runs.get(o.thread_id, o.run_id)),
    ("runs.join", lambda c, o: c.runs.join(o.thread_id, o.run_id)),
    ("runs.join_stream", lambda c, o: _drain(c.runs.join_stream(o.thread_id, o.run_id))),
    ("runs.cancel", lambda c, o: c.runs.cancel(o.thread_id, o.run_id)),
    ("runs.delete", lambda c, o: c.runs.delete(o.thread_id, o.run_id)),
    ("assistants.get", lambda c, o: c.assistants.get(o.assistant_id)),
    ("assistants.update", lambda c, o: c.assistants.update(o.assistant_id, name="mine")),
    ("assistants.delete", lambda c, o: c.assistants.delete(o.assistant_id)),
    ("assistants.get_versions", lambda c, o: c.assistants.get_versions(o.assistant_id)),
    ("assistants.set_latest", lambda c, o: c.assistants.set_latest(o.assistant_id, 1)),
    ("assistants.get_graph", lambda c, o: c.assistants.get_graph(o.assistant_id)),
    ("assistants.get_schemas", lambda c, o: c.assistants.get_schemas(o.assistant_id)),
    (
        "crons.create_for_thread",
        lambda c, o: c.crons.create_for_thread(o.thread_id, "whoami", schedule=YEARLY),
    ),
    ("crons.get", lambda c, o: c.http.get(f"/runs/crons/{o.cron_id}")),
    ("crons.update", lambda c, o: c.crons.update(o.cron_id, schedule="0 0 * * *")),
    ("crons.delete", lambda c, o: c.crons.delete(o.cron_id)),
    (
        "a2a.agent_card",
        lambda c, o: c.http.get(
            "/.well-known/agent-card.json", params={"assistant_id": o.assistant_id}
        ),
    ),
]


async def _refusal(op: Op, client: LangGraphClient, owned: Owned) -> tuple[int, Any]:
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await op(client, owned)
    response = raised.value.response
    await response.aread()
    return response.status_code, response.json()


async def _owned(client: LangGraphClient) -> Owned:
    thread = await client.threads.create(metadata={"purpose": "auth"})
    run = await client.runs.create(thread["thread_id"], "whoami", input={})
    await client.runs.join(thread["thread_id"], run["run_id"])
    assistant = await client.assistants.create("whoami", name="alice's")
    cron: Any = await client.crons.create_for_thread(thread["thread_id"], "whoami", schedule=YEARLY)
    return Owned(thread["thread_id"], run["run_id"], assistant["assistant_id"], cron["cron_id"])


@pytest.mark.parametrize(("name", "op"), MATRIX, ids=[name for name, _ in MATRIX])
async def test_b_cannot_reach_a(users: Users, name: str, op: Op) -> None:
    owned = await _owned(users.a)
    missing = Owned(str(uuid4()), str(uuid4()), str(uuid4()), str(uuid4()))
    status, body = await _refusal(op, users.b, owned)
    expected, _ = await _refusal(op, users.b, missing)
    assert (status, set(body)) == (expected, {"detail"}), f"{name}: {body}"
    assert 400 <= status < 500

    # A's data is as A left it.
    thread: Any = await users.a.threads.get(owned.thread_id)
    assert thread["metadata"]["owner"] == users.a_id and "x" not in thread["metadata"]
    state: Any = await users.a.threads.get_state(owned.thread_id)
    assert state["values"]["user_id"] == users.a_id
    assert len(await users.a.runs.list(owned.thread_id)) == 1
    assistant = await users.a.assistants.get(owned.assistant_id)
    assert (assistant["name"], assistant["version"]) == ("alice's", 1)
    (cron,) = await users.a.crons.search(thread_id=owned.thread_id)
    assert (cron["cron_id"], cron["schedule"]) == (owned.cron_id, YEARLY)


async def test_owner_reaches_own_data(users: Users) -> None:
    owned = await _owned(users.a)
    assert (await users.a.runs.get(owned.thread_id, owned.run_id))["status"] == "success"
    assert len(await users.a.threads.get_history(owned.thread_id)) >= 1
    copy: Any = await users.a.threads.copy(owned.thread_id)  # type: ignore[func-returns-value]
    assert copy["metadata"]["owner"] == users.a_id
    await users.a.threads.update(owned.thread_id, metadata={"x": 1})
    versions = await users.a.assistants.get_versions(owned.assistant_id)
    assert [v["version"] for v in versions] == [1]
    assert "graph_id" in await users.a.assistants.get_schemas(owned.assistant_id)
    await users.a.threads.delete(copy["thread_id"])


async def test_searches_and_counts_see_only_ones_own(users: Users) -> None:
    await _owned(users.a)
    await _owned(users.a)
    mine: Any = await users.b.threads.create()
    assert mine["metadata"]["owner"] != users.a_id
    found = await users.b.threads.search(limit=100)
    assert [t["thread_id"] for t in found] == [mine["thread_id"]]
    assert await users.b.threads.count() == 1
    assert await users.a.threads.count() == 2
    owners = {cast(Any, t["metadata"])["owner"] for t in await users.a.threads.search()}
    assert owners == {users.a_id}
    assert await users.b.assistants.search() == []
    assert await users.b.assistants.count() == 0
    assert await users.a.assistants.count() == 2
    assert await users.b.crons.search() == []
    assert await users.b.crons.count() == 0
    assert await users.a.crons.count() == 2
    (cron, _) = await users.a.crons.search()
    assert cron["metadata"]["owner"] == users.a_id and cron["user_id"] == users.a_id
    pruned = await users.b.threads.prune([t["thread_id"] for t in await users.a.threads.search()])
    assert pruned == {"pruned_count": 0}
    assert await users.a.threads.count() == 2


async def test_no_token_is_401(users: Users) -> None:
    ops: list[Op] = [
        lambda c, o: c.threads.search(),
        lambda c, o: c.threads.create(),
        lambda c, o: _drain(c.runs.stream(None, "whoami", input={})),
        lambda c, o: c.assistants.get("whoami"),
        lambda c, o: c.store.put_item(["a"], "k", {"x": 1}),
        lambda c, o: c.store.get_item(["a"], "k"),
        lambda c, o: c.store.delete_item(["a"], "k"),
        lambda c, o: c.store.search_items(["a"]),
        lambda c, o: c.store.list_namespaces(),
    ]
    for op in ops:
        status, body = await _refusal(op, users.anonymous, Owned("", "", "", ""))
        assert (status, body) == (401, {"detail": "Invalid token"})


async def test_open_paths_need_no_token(auth_server: str) -> None:
    async with httpx.AsyncClient(base_url=auth_server) as http:
        assert (await http.get("/ok")).status_code == 200
        info = (await http.get("/info")).json()
        assert info["flags"]["custom_auth"] is True
        document = (await http.get("/openapi.json")).json()
        assert document["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
        assert document["security"] == [{"BearerAuth": []}]


async def test_a_custom_route_is_protected_and_documented(auth_server: str) -> None:
    """auth.json mounts a custom app with `enable_custom_route_auth`."""
    async with httpx.AsyncClient(base_url=auth_server) as http:
        refused = await http.get("/greeting")
        assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid token"})
        token = {"Authorization": f"Bearer user-alice-{uuid4().hex[:8]}"}
        served = await http.get("/greeting", headers=token)
        assert (served.status_code, served.json()) == (200, {"hello": "custom route"})
        assert "/greeting" in (await http.get("/openapi.json")).json()["paths"]


async def test_a_cors_preflight_needs_no_token(auth_server: str) -> None:
    async with httpx.AsyncClient(base_url=auth_server) as http:
        preflight = await http.options(
            "/threads/search",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "https://app.example")


async def test_denied_action_is_403(users: Users) -> None:
    thread = await users.reader.threads.create()
    status, body = await _refusal(
        lambda c, o: c.threads.delete(o.thread_id),
        users.reader,
        Owned(thread["thread_id"], "", "", ""),
    )
    assert (status, body) == (403, {"detail": "Forbidden"})
    assert (await users.reader.threads.get(thread["thread_id"]))["thread_id"] == thread["thread_id"]


async def test_a_store_handler_namespacing_by_user_isolates_users(users: Users) -> None:
    """tests/graphs/auth.py scopes every store namespace to its user, as LangGraph
    documents: B neither reads, finds, lists nor deletes what A put."""
    b_id = users.a_id.replace("alice", "bob")
    await users.a.store.put_item(["prefs"], "color", {"favorite": "green"})
    mine = await users.a.store.get_item(["prefs"], "color")
    assert mine["namespace"] == [users.a_id, "prefs"] and mine["value"] == {"favorite": "green"}
    assert await users.b.store.get_item(["prefs"], "color") is None
    assert await users.b.store.get_item([users.a_id, "prefs"], "color") is None
    await users.b.store.put_item(["prefs"], "color", {"favorite": "red"})
    await users.b.store.delete_item([users.a_id, "prefs"], "color")
    await users.b.store.delete_item(["prefs"], "color")
    assert (await users.a.store.get_item(["prefs"], "color"))["value"] == {"favorite": "green"}
    assert (await users.b.store.search_items([], limit=100))["items"] == []
    found = (await users.a.store.search_items([], limit=100))["items"]
    assert [item["value"] for item in found] == [{"favorite": "green"}]
    assert (await users.a.store.list_namespaces())["namespaces"] == [[users.a_id, "prefs"]]
    assert (await users.b.store.list_namespaces())["namespaces"] == []
    assert b_id != users.a_id
    status, body = await _refusal(
        lambda c, o: c.store.put_item(["prefs"], "k", {"x": 1}), users.reader, Owned("", "", "", "")
    )
    assert (status, body) == (403, {"detail": "Forbidden"})


async def test_semantic_search_without_an_index_is_refused(users: Users) -> None:
    """auth.json has no store.index: a query or a list of fields to index is refused."""
    for op in (
        lambda c, o: c.store.search_items(["prefs"], query="green"),
        lambda c, o: c.store.put_item(["prefs"], "k", {"x": 1}, index=["x"]),
    ):
        status, body = await _refusal(op, users.a, Owned("", "", "", ""))
        assert status == 422 and body["detail"].split(":")[0] in ("query", "index")
    await users.a.store.put_item(["prefs"], "k", {"x": 1}, index=False)  # nothing to refuse


async def test_the_graph_sees_its_user(users: Users) -> None:
    thread = await users.a.threads.create()
    output: Any = await users.a.runs.wait(thread["thread_id"], "whoami", input={})
    assert output["user_id"] == users.a_id
    assert output["permissions"] == ["delete"]
    stateless: Any = await users.b.runs.wait(None, "whoami", input={})
    assert stateless["user_id"] != users.a_id and stateless["user_id"].startswith("bob-")


async def test_a_run_creating_its_thread_stamps_the_owner(users: Users) -> None:
    thread_id = str(uuid4())
    await users.a.runs.wait(thread_id, "whoami", input={}, if_not_exists="create")
    thread: Any = await users.a.threads.get(thread_id)
    assert thread["metadata"]["owner"] == users.a_id
    status, _ = await _refusal(
        lambda c, o: c.threads.get(o.thread_id), users.b, Owned(thread_id, "", "", "")
    )
    assert status == 404


def test_a_bad_auth_path_stops_the_api(broker_env: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "api",
            "--config",
            str(GRAPHS / "bad_auth.json"),
            "--port",
            "1",
        ],
        env=broker_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("broker api: Failed to load auth from './whoami.py:graph'")
    assert "Traceback" not in done.stderr


# -- MCP and A2A: JSON-RPC answers in the envelope, so they are checked here, not above ----


@asynccontextmanager
async def _mcp(server: str, token: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{server}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _token(client: LangGraphClient) -> str:
    return str(client.http.client.headers["Authorization"]).removeprefix("Bearer ")


async def test_mcp_tools_are_the_callers_own_assistants(users: Users, auth_server: str) -> None:
    owned = await _owned(users.a)
    async with _mcp(auth_server, _token(users.a)) as mcp:
        tools = {tool.name for tool in (await mcp.list_tools()).tools}
        result = await mcp.call_tool("alice_s", {})
    async with _mcp(auth_server, _token(users.b)) as mcp:
        theirs = {tool.name for tool in (await mcp.list_tools()).tools}
        with pytest.raises(MCPError):
            await mcp.call_tool("alice_s", {})
    assert "alice_s" in tools and "alice_s" not in theirs  # "alice's": MCP allows no quote
    assert result.structured_content == {"user_id": users.a_id, "permissions": ["delete"]}
    assert (await users.a.assistants.get(owned.assistant_id))["version"] == 1


async def _a2a(client: LangGraphClient, assistant: str, method: str, params: Any) -> Any:
    """The JSON-RPC answer, whatever its HTTP status (the SDK's client raises on 4xx)."""
    body = {"jsonrpc": "2.0", "id": "1", "method": method, "params": params}
    return (await client.http.client.post(f"/a2a/{assistant}", json=body)).json()


async def test_a2a_tasks_of_others_are_not_found(users: Users) -> None:
    owned = await _owned(users.a)
    ids = {"id": owned.run_id, "contextId": owned.thread_id}
    missing = {"id": str(uuid4()), "contextId": str(uuid4())}
    for method in ("tasks/get", "tasks/cancel"):
        theirs = await _a2a(users.b, "whoami", method, ids)
        nobodys = await _a2a(users.b, "whoami", method, missing)
        assert theirs["error"]["code"] == nobodys["error"]["code"] == -32001
    mine = await _a2a(users.a, "whoami", "tasks/get", ids)
    assert mine["result"]["status"]["state"] == "completed"

    # B cannot send into A's context either, and A's thread is as A left it.
    data = {"kind": "data", "data": {"permissions": []}}
    sent = {"role": "user", "parts": [data], "messageId": "m", "contextId": owned.thread_id}
    refused = await _a2a(users.b, "whoami", "message/send", {"message": sent})
    assert "error" in refused
    assert len(await users.a.runs.list(owned.thread_id)) == 1

    # A's own message runs as A.
    answered = await _a2a(users.a, "whoami", "message/send", {"message": sent})
    assert answered["result"]["status"]["state"] == "completed"
    state: Any = await users.a.threads.get_state(owned.thread_id)
    assert state["values"]["user_id"] == users.a_id


async def test_mcp_and_a2a_need_a_token(auth_server: str) -> None:
    async with httpx.AsyncClient(base_url=auth_server) as http:
        for path in ("/mcp", "/mcp/", "/a2a/whoami"):
            refused = await http.post(path, json={"jsonrpc": "2.0", "id": 1, "method": "x"})
            assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid token"})
        card = await http.get("/.well-known/agent-card.json", params={"assistant_id": "whoami"})
        assert card.status_code == 401


async def test_thread_stream_commands_and_socket_obey_auth(users: Users, auth_server: str) -> None:
    """run.start on A's thread is refused for B (threads.create_run) and A's thread keeps
    its runs; the WebSocket is authenticated at the handshake and authorized as a read."""
    owned = await _owned(users.a)
    start = {"id": 1, "method": "run.start", "params": {"assistant_id": "whoami", "input": {}}}
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await users.b.http.post(f"/threads/{owned.thread_id}/commands", json=start)
    assert raised.value.response.status_code == 404
    assert len(await users.a.runs.list(owned.thread_id)) == 1
    mine = await users.a.http.post(f"/threads/{owned.thread_id}/commands", json=start)
    assert mine["type"] == "success"

    url = auth_server.replace("http", "ws", 1) + f"/threads/{owned.thread_id}/stream/events"
    subscribe = json.dumps(
        {"id": 1, "method": "subscription.subscribe", "params": {"channels": ["values"]}}
    )
    with pytest.raises(InvalidStatus) as refused:  # no token: closed before it is accepted
        async with connect(url):
            pass
    assert refused.value.response.status_code == 403
    bob = {"Authorization": cast(Any, users.b.http.client.headers)["authorization"]}
    async with connect(url, additional_headers=bob) as socket:
        await socket.send(subscribe)
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
