"""The SDK's thread-centric streaming (`client.threads.stream`) over SSE and WebSocket:
commands start and resume runs, the thread's events arrive as protocol events."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import LangGraphClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# langgraph_sdk 0.4.14's thread streams close superseded connections in fire-and-forget
# tasks, so a socket of theirs can be collected after its test (not ours: the server's
# side is checked by the tests). Each test collects its own, ignoring their warnings,
# instead of letting them fail whichever test the garbage collector happens to run in.
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TRANSPORTS = ["sse", "websocket"]


@pytest.fixture(autouse=True)
def _sdk_sockets_collected() -> Iterator[None]:
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


LIMIT = 20.0  # seconds any one stream may take


def said(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_messages_token_by_token_and_output(client: LangGraphClient, transport: str) -> None:
    async with client.threads.stream(assistant_id="chat", transport=transport) as thread:  # type: ignore[arg-type]
        started = await thread.run.start(input=said("hello there"))
        async with asyncio.timeout(LIMIT):
            messages = [m async for m in thread.messages]
            output = await thread.output
    deltas = [[d async for d in m.text] for m in messages]
    assert deltas[0] == ["You", " said:", " hello", " there"]  # token by token
    assert ["".join(d) for d in deltas] == ["You said: hello there", "That is all."]
    assert [m.node for m in messages] == ["chat", "close"]
    assert output["messages"][-1]["content"] == "That is all."
    assert started["run_id"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lifecycle_and_values(client: LangGraphClient, transport: str) -> None:
    async with client.threads.stream(assistant_id="counter", transport=transport) as thread:  # type: ignore[arg-type]
        run = await thread.run.start(input={"count": 1})
        async with asyncio.timeout(LIMIT):
            events = [e async for e in thread.subscribe(["lifecycle", "values"])]
    lifecycle = [e["params"]["data"] for e in events if e["method"] == "lifecycle"]
    assert [(d["event"], d["run_id"]) for d in lifecycle] == [
        ("running", run["run_id"]),
        ("completed", run["run_id"]),
    ]
    values = [e["params"]["data"] for e in events if e["method"] == "values"]
    assert values and values[-1] == (await client.threads.get_state(thread.thread_id))["values"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tool_call_content_blocks(client: LangGraphClient, transport: str) -> None:
    async with client.threads.stream(assistant_id="agent", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input=said("what is the weather in Paris"))
        async with asyncio.timeout(LIMIT):
            events = [e async for e in thread.subscribe(["messages", "tools"])]
            await thread.output
    blocks = [
        e["params"]["data"]
        for e in events
        if e["method"] == "messages" and e["params"]["data"]["event"].startswith("content-block")
    ]
    started = [b["content"] for b in blocks if b["event"] == "content-block-start"]
    assert started[0] == {
        "type": "tool_call_chunk",
        "id": "call_1",
        "name": "get_weather",
        "args": "",
    }
    finished = [b["content"] for b in blocks if b["event"] == "content-block-finish"]
    assert finished[0] == {
        "type": "tool_call",
        "id": "call_1",
        "name": "get_weather",
        "args": {"city": "Paris"},
    }
    tools = [e["params"]["data"] for e in events if e["method"] == "tools"]
    assert [t["event"] for t in tools] == ["tool-started", "tool-finished"]
    assert tools[0]["tool_name"] == "get_weather" and tools[0]["input"] == {"city": "Paris"}
    assert tools[1]["output"] == "It's always sunny in Paris."


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_interrupt_then_respond(client: LangGraphClient, transport: str) -> None:
    async with client.threads.stream(assistant_id="interrupting", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input={"question": "Ready?"})
        async with asyncio.timeout(LIMIT):
            await _interrupted(thread)
            assert thread.interrupts[0]["value"] == {"question": "Ready?"}
            await thread.run.respond("yes")
            output = await thread.output
    assert output == {"question": "Ready?", "answer": "yes!"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subgraph_lifecycle(client: LangGraphClient, transport: str) -> None:
    async with client.threads.stream(assistant_id="nested", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input={"steps": []})
        async with asyncio.timeout(LIMIT):
            events = [e async for e in thread.subscribe(["lifecycle", "custom", "tasks"])]
    ended = [
        e["params"]["data"]["id"]
        for e in events
        if e["method"] == "tasks"
        and "result" in e["params"]["data"]
        and not e["params"]["namespace"]
    ]
    nested = [
        (e["params"]["namespace"][0].split(":")[0], e["params"]["data"]["event"])
        for e in events
        if e["method"] == "lifecycle" and e["params"]["namespace"]
    ]
    assert nested == [("inner", "started"), ("inner", "completed")]
    inner = next(e for e in events if e["params"]["namespace"])["params"]["namespace"][0]
    assert inner.split(":")[1] in ended  # the task that ran the subgraph
    custom = [e for e in events if e["method"] == "custom"]
    assert custom[0]["params"]["data"] == {"payload": {"from": "first"}}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_error_is_a_failed_lifecycle(client: LangGraphClient, transport: str) -> None:
    async with client.threads.stream(assistant_id="failing", transport=transport) as thread:  # type: ignore[arg-type]
        await thread.run.start(input={"value": "x"})
        async with asyncio.timeout(LIMIT):
            with pytest.raises(RuntimeError, match="cannot handle"):
                await thread.output
            events = [e async for e in thread.subscribe(["lifecycle"])]
    assert events[-1]["params"]["data"]["event"] == "failed"
    assert "cannot handle 'x!'" in events[-1]["params"]["data"]["error"]


async def test_cancel_ends_with_a_terminal_event(client: LangGraphClient) -> None:
    async with client.threads.stream(assistant_id="slow") as thread:
        run = await thread.run.start(input={"ticks": 50})
        async with asyncio.timeout(LIMIT):
            events = thread.subscribe(["lifecycle"])
            first = await anext(events)
            assert first["params"]["data"]["event"] == "running"
            await client.runs.cancel(thread.thread_id, run["run_id"])
            rest = [e async for e in events]
            with pytest.raises(RuntimeError, match="cancelled"):
                await thread.output
    assert rest[-1]["params"]["data"] == {
        "event": "failed",
        "run_id": run["run_id"],
        "error": "Run was cancelled",
    }


async def test_two_streams_on_one_thread(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    async with (
        client.threads.stream(tid, assistant_id="chat") as one,
        client.threads.stream(tid, assistant_id="chat", transport="websocket") as two,
    ):
        await one.run.start(input=said("first"))
        async with asyncio.timeout(LIMIT):
            seen_one, seen_two = await asyncio.gather(
                _collect(one.subscribe(["lifecycle", "messages"])),
                _collect(two.subscribe(["lifecycle", "messages"])),
            )
    assert [e["event_id"] for e in seen_one] == [e["event_id"] for e in seen_two]
    assert seen_one[-1]["params"]["data"]["event"] == "completed"


async def _interrupted(thread: Any) -> None:
    """Until the SDK's watcher (on the input channel) has seen the interrupt."""
    for _ in range(int(LIMIT / 0.02)):
        if thread.interrupted:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no interrupt was heard")


async def _collect(events: Any) -> list[dict[str, Any]]:
    return [e async for e in events]


async def test_reconnect_with_since_replays_nothing_seen(server: str) -> None:
    tid = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server, timeout=LIMIT) as http:
        start = {
            "id": 1,
            "method": "run.start",
            "params": {"assistant_id": "chat", "input": said("again")},
        }
        assert (await http.post(f"/threads/{tid}/commands", json=start)).status_code == 200
        everything = await _sse(http, tid, {"channels": ["lifecycle", "messages"]})
        half = everything[len(everything) // 2]["seq"]
        rest = await _sse(http, tid, {"channels": ["lifecycle", "messages"], "since": half})
    assert [e["seq"] for e in rest] == [e["seq"] for e in everything if e["seq"] > half]
    assert rest[-1]["params"]["data"]["event"] == "completed"


async def _sse(http: httpx.AsyncClient, tid: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    events = []
    async with http.stream("POST", f"/threads/{tid}/stream/events", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(httpx.Response(200, content=line[6:]).json())
                if (
                    events[-1]["method"] == "lifecycle"
                    and events[-1]["params"]["data"]["event"] == "completed"
                ):
                    return events
    return events


def test_sync_client(server: str) -> None:
    client = get_sync_client(url=server, api_key=None)
    try:
        for transport in TRANSPORTS:
            with client.threads.stream(assistant_id="chat", transport=transport) as thread:  # type: ignore[arg-type]
                thread.run.start(input=said("sync"))
                messages = list(thread.messages)
                output = thread.output
            assert "".join(messages[0].text) == "You said: sync"
            assert output["messages"][-1]["content"] == "That is all."
    finally:
        client.close()


async def test_bad_input(server: str) -> None:
    tid = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server, timeout=LIMIT) as http:
        unknown = await http.post(f"/threads/{tid}/commands", json={"id": 3, "method": "run.fly"})
        assert unknown.status_code == 400
        assert unknown.json()["error"] == "unknown_command" and unknown.json()["id"] == 3
        assert "run.fly" in unknown.json()["detail"]
        no_assistant = {"id": 1, "method": "run.start", "params": {}}
        missing = await http.post(f"/threads/{tid}/commands", json=no_assistant)
        assert missing.status_code == 400 and "params.assistant_id" in missing.json()["detail"]
        envelope = await http.post(f"/threads/{tid}/commands", json={"method": "run.start"})
        assert envelope.status_code == 422
        channel = await http.post(f"/threads/{tid}/stream/events", json={"channels": ["nope"]})
        assert channel.status_code == 422 and "nope" in channel.json()["detail"]
        nothing = await http.post(f"/threads/{tid}/stream/events", json={"channels": ["values"]})
        assert nothing.status_code == 404
        respond = {
            "id": 2,
            "method": "input.respond",
            "params": {"interrupt_id": "x", "response": 1},
        }
        assert (await http.post(f"/threads/{tid}/commands", json=respond)).status_code == 404


async def test_remote_graph(server: str) -> None:
    """LangGraph's RemoteGraph: invoke and stream (the runs API), and its v3 events (the
    thread-centric stream)."""
    remote = RemoteGraph("chat", url=server, api_key=None)
    output = await remote.ainvoke(said("remote"))
    assert output["messages"][1]["content"] == "You said: remote"
    chunks = [c async for c in remote.astream(said("streamed"), stream_mode="values")]
    assert chunks[-1]["messages"][-1]["content"] == "That is all."
    async with await remote.astream_events(said("v3"), version="v3") as run:
        async with asyncio.timeout(LIMIT):
            messages = [m async for m in run.messages]
            final = await run.output()
    assert [await m.text for m in messages] == ["You said: v3", "That is all."]
    assert final["messages"][-1]["content"] == "That is all."


async def test_a_command_on_one_api_reaches_a_stream_on_another(
    production_server: str, second_server: str
) -> None:
    tid = str(uuid.uuid4())
    start = {
        "id": 1,
        "method": "run.start",
        "params": {"assistant_id": "counter", "input": {"count": 1}},
    }
    async with (
        httpx.AsyncClient(base_url=production_server, timeout=LIMIT) as one,
        httpx.AsyncClient(base_url=second_server, timeout=LIMIT) as two,
    ):
        assert (await two.post(f"/threads/{tid}/commands", json=start)).status_code == 200
        async with asyncio.timeout(LIMIT):
            first = await _sse(one, tid, {"channels": ["lifecycle", "values"]})
            # a second run, started on process 2 while process 1 streams the thread
            listening = asyncio.ensure_future(
                _sse(one, tid, {"channels": ["lifecycle"], "since": first[-1]["seq"]})
            )
            await asyncio.sleep(0.3)
            again = {**start, "id": 2}
            run = (await two.post(f"/threads/{tid}/commands", json=again)).json()["result"]
            heard = await listening
        get = {"id": 3, "method": "state.get", "params": {"keys": ["count"]}}
        state = (await one.post(f"/threads/{tid}/commands", json=get)).json()["result"]
    assert [e["params"]["data"]["event"] for e in first if e["method"] == "lifecycle"] == [
        "running",
        "completed",
    ]
    assert [(e["params"]["data"]["event"], e["params"]["data"]["run_id"]) for e in heard] == [
        ("running", run["run_id"]),
        ("completed", run["run_id"]),
    ]
    assert state["values"] == {"count": 112} and state["checkpoint"]["id"]


async def test_websocket_refuses_bad_commands_in_band(server: str) -> None:
    tid = str(uuid.uuid4())
    url = server.replace("http", "ws", 1) + f"/threads/{tid}/stream/events"
    async with connect(url) as socket:
        await socket.send("not json")
        assert json.loads(await socket.recv())["error"] == "invalid_argument"
        await socket.send(json.dumps({"id": 5, "method": "run.fly"}))
        refused = json.loads(await socket.recv())
        assert (refused["id"], refused["error"]) == (5, "unknown_command")
        await socket.send(json.dumps({"id": 7, "method": "agent.getTree"}))
        assert json.loads(await socket.recv())["error"] == "not_supported"
        await socket.send(
            json.dumps({"id": 6, "method": "subscription.subscribe", "params": {"channels": ["x"]}})
        )
        assert json.loads(await socket.recv())["error"] == "invalid_argument"
        await socket.send(
            json.dumps(
                {"id": 7, "method": "subscription.subscribe", "params": {"channels": ["values"]}}
            )
        )
        with pytest.raises(ConnectionClosed) as closed:  # no such thread
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sdk_projections(client: LangGraphClient, transport: str) -> None:
    """The SDK's typed projections: subgraph handles, tool-call handles, values."""
    kind: Any = transport
    async with client.threads.stream(assistant_id="nested", transport=kind) as thread:
        await thread.run.start(input={"steps": []})
        async with asyncio.timeout(LIMIT):
            children = [c async for c in thread.subgraphs]
    assert [(c.graph_name, c.status) for c in children] == [("inner", "completed")]
    async with client.threads.stream(assistant_id="agent", transport=kind) as thread:
        await thread.run.start(input=said("weather in Rome"))
        async with asyncio.timeout(LIMIT):
            calls = [c async for c in thread.tool_calls]
            outputs = [await c.output for c in calls]
    assert [(c.name, c.input) for c in calls] == [("get_weather", {"city": "Rome"})]
    assert outputs == ["It's always sunny in Rome."]
    async with client.threads.stream(assistant_id="counter", transport=kind) as thread:
        await thread.run.start(input={"count": 1})
        async with asyncio.timeout(LIMIT):
            values = [v async for v in thread.values]
    assert values[-1] == {"count": 112, "log": ["one", "two", "three"]}


async def test_websocket_takes_commands_in_band(server: str) -> None:
    tid = str(uuid.uuid4())
    url = server.replace("http", "ws", 1) + f"/threads/{tid}/stream/events"
    start = {
        "id": 1,
        "method": "run.start",
        "params": {"assistant_id": "counter", "input": {"count": 1}},
    }
    subscribe = {"id": 2, "method": "subscription.subscribe", "params": {"channels": ["lifecycle"]}}
    async with connect(url) as socket, asyncio.timeout(LIMIT):
        await socket.send(json.dumps(start))
        started = json.loads(await socket.recv())
        await socket.send(json.dumps(subscribe))
        subscribed = json.loads(await socket.recv())
        events = [json.loads(await socket.recv()) for _ in range(2)]
    assert started["type"] == "success" and started["id"] == 1
    assert subscribed == {"type": "success", "id": 2, "result": {"subscription_id": "1"}}
    run_id = started["result"]["run_id"]
    assert [(e["params"]["data"]["event"], e["params"]["data"]["run_id"]) for e in events] == [
        ("running", run_id),
        ("completed", run_id),
    ]


async def test_list_checkpoints_and_refused_commands(server: str) -> None:
    tid = str(uuid.uuid4())
    start = {
        "id": 1,
        "method": "run.start",
        "params": {"assistant_id": "counter", "input": {"count": 1}},
    }
    async with httpx.AsyncClient(base_url=server, timeout=LIMIT) as http:
        assert (await http.post(f"/threads/{tid}/commands", json=start)).status_code == 200
        async with asyncio.timeout(LIMIT):
            await _sse(http, tid, {"channels": ["lifecycle"]})
        listing = {"id": 2, "method": "state.listCheckpoints", "params": {"limit": 2}}
        got = (await http.post(f"/threads/{tid}/commands", json=listing)).json()["result"]
        bad = {"id": 3, "method": "state.listCheckpoints", "params": {"limit": 0}}
        invalid = await http.post(f"/threads/{tid}/commands", json=bad)
        refused = [
            await http.post(f"/threads/{tid}/commands", json={"id": 4, "method": m, "params": {}})
            for m in ("agent.getTree", "state.fork", "input.inject", "subscription.reconnect")
        ]
    checkpoints = got["checkpoints"]
    assert len(checkpoints) == 2 and all(c["id"] and c["ns"] == "" for c in checkpoints)
    assert checkpoints[0]["parent_id"] == checkpoints[1]["id"]
    assert invalid.status_code == 400 and "params.limit" in invalid.json()["detail"]
    assert all(r.status_code == 400 and r.json()["error"] == "not_supported" for r in refused)
