"""Every stream mode through the real SDK, checked for content (api-contract.md section 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode, StreamPart

from tests.services import Services

BENCH = Path(__file__).resolve().parents[2] / "bench" / "stream.py"

CHAT_INPUT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello streaming world"}]}
CHAT_REPLY = "You said: hello streaming world"
CLOSING = "That is all."  # tests/graphs/chat.py
INNER_REPLY = "You said: inside the subgraph"  # tests/graphs/nested.py
COUNTER: dict[str, Any] = {"count": 0, "log": []}
CHECKPOINT_KEYS = {"config", "parent_config", "values", "metadata", "next", "tasks"}
TASK_RESULT_KEYS = {"id", "name", "error", "result", "interrupts"}


async def _stream(
    client: LangGraphClient,
    graph: str,
    input: Any = None,
    *,
    modes: StreamMode | Sequence[StreamMode],
    threaded: bool = True,
    **options: Any,
) -> tuple[str | None, list[StreamPart]]:
    thread_id = (await client.threads.create())["thread_id"] if threaded else None
    stream = client.runs.stream(thread_id, graph, input=input, stream_mode=modes, **options)
    return thread_id, [part async for part in stream]


def _data(parts: list[StreamPart], event: str) -> list[Any]:
    return [p.data for p in parts if p.event == event]


def _split(event: str) -> tuple[str, list[str]]:
    mode, *namespace = event.split("|")
    return mode, namespace


# -- messages ------------------------------------------------------------------------


async def test_messages_tuple_streams_tokens_with_metadata(client: LangGraphClient) -> None:
    thread_id, parts = await _stream(client, "chat", CHAT_INPUT, modes="messages-tuple")
    assert parts[0].event == "metadata"
    run_id = parts[0].data["run_id"]
    assert {p.event for p in parts[1:]} == {"messages"}
    pairs: list[Any] = _data(parts, "messages")
    assert all(isinstance(pair, list) and len(pair) == 2 for pair in pairs)
    tokens = [(c, m) for c, m in pairs if c["type"] == "AIMessageChunk"]
    # one event per token: the fake model streams word by word, then an empty last chunk
    assert [c["content"] for c, _ in tokens] == [
        "You",
        " said:",
        " hello",
        " streaming",
        " world",
        "",
    ]
    assert "".join(c["content"] for c, _ in tokens) == CHAT_REPLY
    assert len({c["id"] for c, _ in tokens}) == 1
    for chunk, metadata in tokens:
        assert {"tool_calls", "tool_call_chunks", "additional_kwargs", "response_metadata"} <= set(
            chunk
        )
        assert metadata["langgraph_node"] == "chat"
        assert metadata["langgraph_step"] == 1
        assert metadata["langgraph_triggers"] == ["branch:to:chat"]
        assert metadata["langgraph_path"] == ["__pregel_pull", "chat"]
        assert metadata["langgraph_checkpoint_ns"].startswith("chat:")
        assert metadata["checkpoint_ns"] == metadata["langgraph_checkpoint_ns"]
        assert metadata["ls_provider"] == "fakestreaming"
        assert (metadata["thread_id"], metadata["run_id"]) == (thread_id, run_id)
        assert metadata["graph_id"] == "chat"
        assert "assistant_id" in metadata
    # a node that returns a whole message (no tokens) shows up as that message
    whole = [(c, m) for c, m in pairs if c["type"] != "AIMessageChunk"]
    assert [(c["type"], c["content"], m["langgraph_node"]) for c, m in whole] == [
        ("ai", CLOSING, "close")
    ]


async def test_legacy_messages_accumulate(client: LangGraphClient) -> None:
    _, parts = await _stream(client, "chat", CHAT_INPUT, modes="messages")
    events = [p.event for p in parts]
    assert set(events) == {
        "metadata",
        "messages/metadata",
        "messages/partial",
        "messages/complete",
    }
    reply_id = next(iter(parts[1].data))
    # metadata comes once per message, before its first partial
    assert events[1:3] == ["messages/metadata", "messages/partial"]
    assert parts[1].data[reply_id]["metadata"]["langgraph_node"] == "chat"
    partials = _data(parts, "messages/partial")
    assert all(len(p) == 1 and p[0]["id"] == reply_id for p in partials)
    contents = [p[0]["content"] for p in partials]
    assert contents[:5] == [
        "You",
        "You said:",
        "You said: hello",
        "You said: hello streaming",
        CHAT_REPLY,
    ]
    assert contents[-1] == CHAT_REPLY
    assert {p[0]["type"] for p in partials} == {"ai"}
    # the complete (never streamed) message: its metadata, then the message itself
    assert events[-2:] == ["messages/metadata", "messages/complete"]
    closing_metadata = parts[-2].data
    assert list(closing_metadata) == ["closing-remark"]
    assert closing_metadata["closing-remark"]["metadata"]["langgraph_node"] == "close"
    complete = parts[-1].data
    assert len(complete) == 1
    assert (complete[0]["id"], complete[0]["type"], complete[0]["content"]) == (
        "closing-remark",
        "ai",
        CLOSING,
    )


async def test_messages_from_a_task_and_a_tool(client: LangGraphClient) -> None:
    _, parts = await _stream(
        client, "task_chat", {"question": "from a task"}, modes="messages-tuple", threaded=False
    )
    pairs: list[Any] = _data(parts, "messages")
    assert "".join(c["content"] for c, m in pairs if m["langgraph_node"] == "ask") == (
        "You said: from a task"
    )
    weather = {"messages": [{"role": "user", "content": "what's the weather in sf"}]}
    _, parts = await _stream(client, "agent", weather, modes="messages-tuple")
    pairs = _data(parts, "messages")
    assert [(c["type"], c["content"]) for c, m in pairs if m["langgraph_node"] == "tools"] == [
        ("tool", "It's always sunny in sf.")
    ]
    reply = [c["content"] for c, m in pairs if m["langgraph_node"] == "agent" and c["content"]]
    assert "".join(reply) == "The tool says: It's always sunny in sf."


async def test_messages_from_a_subgraph_without_stream_subgraphs(
    client: LangGraphClient,
) -> None:
    # Callbacks reach LLM calls at any depth: tokens come through, under the bare name.
    _, parts = await _stream(client, "nested", {"steps": []}, modes=["messages-tuple", "updates"])
    tokens = [c["content"] for c, m in _data(parts, "messages") if m["langgraph_node"] == "second"]
    assert "".join(tokens) == INNER_REPLY
    assert [next(iter(u)) for u in _data(parts, "updates")] == ["prepare", "inner", "finish"]
    assert all("|" not in p.event for p in parts)


# -- custom, values, updates, subgraphs ----------------------------------------------


async def test_custom_payloads_arrive_in_order(client: LangGraphClient) -> None:
    _, parts = await _stream(client, "emitter", {"count": 25, "pad": 3}, modes="custom")
    assert [p.event for p in parts] == ["metadata"] + ["custom"] * 25
    assert _data(parts, "custom") == [{"index": i, "pad": "xxx"} for i in range(25)]


async def test_two_modes_interleave(client: LangGraphClient) -> None:
    _, parts = await _stream(client, "emitter", {"count": 3}, modes=["custom", "updates"])
    assert [(p.event, p.data) for p in parts[1:]] == [
        ("custom", {"index": 0, "pad": ""}),
        ("custom", {"index": 1, "pad": ""}),
        ("custom", {"index": 2, "pad": ""}),
        ("updates", {"emit": {"emitted": 3}}),
    ]
    _, parts = await _stream(client, "chat", CHAT_INPUT, modes=["updates", "messages-tuple"])
    names = [p.event for p in parts]
    # the tokens of `chat` all come before its update; the whole message of `close` too
    assert names == ["metadata"] + ["messages"] * 6 + ["updates", "messages", "updates"]
    assert [next(iter(u)) for u in _data(parts, "updates")] == ["chat", "close"]


async def test_subgraph_events_carry_their_namespace(client: LangGraphClient) -> None:
    modes: list[StreamMode] = ["updates", "custom", "tasks", "messages-tuple"]
    _, parts = await _stream(client, "nested", {"steps": []}, modes=modes, stream_subgraphs=True)
    inner_task = next(t["id"] for t in _data(parts, "tasks") if t["name"] == "inner")
    namespace = f"inner:{inner_task}"
    inside = [(p.event, p.data) for p in parts if "|" in p.event]
    assert {_split(event)[1][0] for event, _ in inside} == {namespace}
    assert all(len(_split(event)[1]) == 1 for event, _ in inside)
    updates = [(e, next(iter(d))) for e, d in ((p.event, p.data) for p in parts) if "updates" in e]
    assert updates == [
        ("updates", "prepare"),
        (f"updates|{namespace}", "first"),
        (f"updates|{namespace}", "second"),
        ("updates", "inner"),
        ("updates", "finish"),
    ]
    assert [d for e, d in inside if e == f"custom|{namespace}"] == [{"from": "first"}]
    inner_tasks = [d["name"] for e, d in inside if e == f"tasks|{namespace}"]
    assert inner_tasks == ["first", "first", "second", "second"]  # start, result, ...
    tokens = [d[0]["content"] for e, d in inside if e == f"messages|{namespace}"]
    assert "".join(tokens) == INNER_REPLY
    # the SDK's v2 stream splits the same names into type and namespace
    thread = await client.threads.create()
    v2 = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "nested",
            input={"steps": []},
            stream_mode="updates",
            stream_subgraphs=True,
            version="v2",
        )
    ]
    typed: list[Any] = [(p["type"], len(p["ns"]), next(iter(p["data"]))) for p in v2[1:]]
    assert typed == [
        ("updates", 0, "prepare"),
        ("updates", 1, "first"),
        ("updates", 1, "second"),
        ("updates", 0, "inner"),
        ("updates", 0, "finish"),
    ]


async def test_without_stream_subgraphs_only_root_events(client: LangGraphClient) -> None:
    modes: list[StreamMode] = ["updates", "custom", "tasks", "debug", "values"]
    _, parts = await _stream(client, "nested", {"steps": []}, modes=modes)
    assert all("|" not in p.event for p in parts)
    assert _data(parts, "custom") == []
    assert [next(iter(u)) for u in _data(parts, "updates")] == ["prepare", "inner", "finish"]
    assert {t["name"] for t in _data(parts, "tasks")} == {"prepare", "inner", "finish"}
    assert _data(parts, "values")[-1] == {
        "steps": ["prepare", "finish"],
        "trail": ["first", "second"],
        "said": INNER_REPLY,
    }


async def test_interrupt_appears_in_updates_and_values(client: LangGraphClient) -> None:
    thread_id, parts = await _stream(
        client, "interrupting", {"question": "why?"}, modes=["values", "updates"]
    )
    assert thread_id is not None
    interrupt = _data(parts, "updates")[-1]["__interrupt__"]
    assert [i["value"] for i in interrupt] == [{"question": "why?"}]
    assert isinstance(interrupt[0]["id"], str)
    assert _data(parts, "values")[-1] == {"question": "why?", "__interrupt__": interrupt}
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    resumed = [
        part
        async for part in client.runs.stream(
            thread_id, "interrupting", command={"resume": "because"}, stream_mode="updates"
        )
    ]
    assert [p.data for p in resumed[1:]] == [
        {"ask": {"answer": "because"}},
        {"done": {"answer": "because!"}},
    ]
    assert (await client.threads.get(thread_id))["status"] == "idle"


# -- debug, tasks, checkpoints -------------------------------------------------------


async def test_debug_steps_in_order_with_checkpoint_additions(client: LangGraphClient) -> None:
    thread_id, parts = await _stream(client, "counter", COUNTER, modes="debug")
    debug: list[Any] = _data(parts, "debug")
    assert [p.event for p in parts] == ["metadata"] + ["debug"] * len(debug)
    assert all(set(d) == {"step", "timestamp", "type", "payload"} for d in debug)
    assert all(datetime.fromisoformat(d["timestamp"]).tzinfo is not None for d in debug)
    steps = [d["step"] for d in debug]
    assert steps == sorted(steps)
    assert (steps[0], steps[-1]) == (-1, 3)
    # each node: a checkpoint naming it next, its task, its result; then the last checkpoint
    assert [(d["step"], d["type"]) for d in debug] == [
        (-1, "checkpoint"),
        (0, "checkpoint"),
        *[(s, t) for s in (1, 2, 3) for t in ("task", "task_result", "checkpoint")],
    ]
    checkpoints = [d["payload"] for d in debug if d["type"] == "checkpoint"]
    parent = None
    for payload in checkpoints:
        assert set(payload) == CHECKPOINT_KEYS | {"checkpoint", "parent_checkpoint"}
        configurable = payload["config"]["configurable"]
        assert payload["checkpoint"] == {
            "checkpoint_id": configurable["checkpoint_id"],
            "thread_id": thread_id,
            "checkpoint_ns": "",
        }
        assert payload["parent_checkpoint"] == parent
        parent = payload["checkpoint"]
    assert [c["next"] for c in checkpoints] == [["__start__"], ["one"], ["two"], ["three"], []]
    assert checkpoints[-1]["values"] == {"count": 111, "log": ["one", "two", "three"]}
    tasks = [d["payload"] for d in debug if d["type"] == "task"]
    assert [t["name"] for t in tasks] == ["one", "two", "three"]
    assert all({"id", "name", "input", "triggers"} <= set(t) for t in tasks)
    results = [d["payload"] for d in debug if d["type"] == "task_result"]
    assert all(set(r) == TASK_RESULT_KEYS for r in results)
    assert [r["id"] for r in results] == [t["id"] for t in tasks]
    assert [r["result"] for r in results] == [
        {"count": 1, "log": ["one"]},
        {"count": 11, "log": ["two"]},
        {"count": 111, "log": ["three"]},
    ]


async def test_debug_subgraph_task_names_its_checkpoint(client: LangGraphClient) -> None:
    thread_id, parts = await _stream(client, "nested", {"steps": []}, modes="debug")
    checkpoints = [d["payload"] for d in _data(parts, "debug") if d["type"] == "checkpoint"]
    inner = next(t for c in checkpoints for t in c["tasks"] if t["name"] == "inner")
    assert "state" not in inner
    assert inner["checkpoint"] == {
        "thread_id": thread_id,
        "checkpoint_ns": f"inner:{inner['id']}",
    }


async def test_tasks_and_checkpoints_payloads(client: LangGraphClient) -> None:
    _, parts = await _stream(client, "counter", COUNTER, modes=["tasks", "checkpoints"])
    tasks = _data(parts, "tasks")
    starts, results = tasks[0::2], tasks[1::2]
    assert [t["name"] for t in starts] == ["one", "two", "three"]
    assert all({"id", "name", "input", "triggers"} <= set(t) for t in starts)
    assert all("result" not in t for t in starts)
    assert all(set(r) == TASK_RESULT_KEYS for r in results)
    assert [r["id"] for r in results] == [t["id"] for t in starts]
    assert [r["error"] for r in results] == [None] * 3
    checkpoints = _data(parts, "checkpoints")
    assert all(set(c) == CHECKPOINT_KEYS for c in checkpoints)
    assert [c["metadata"]["step"] for c in checkpoints] == [-1, 0, 1, 2, 3]
    assert checkpoints[-1]["values"] == {"count": 111, "log": ["one", "two", "three"]}
    assert checkpoints[-1]["next"] == []
    # checkpoints and tasks interleave in graph order: each task between two checkpoints
    order = [p.event for p in parts[1:]]
    assert order == ["checkpoints", "checkpoints"] + ["tasks", "tasks", "checkpoints"] * 3


async def test_stateless_run_streams_tasks_but_no_checkpoints(client: LangGraphClient) -> None:
    _, parts = await _stream(
        client, "counter", COUNTER, modes=["tasks", "checkpoints"], threaded=False
    )
    assert _data(parts, "checkpoints") == []  # no checkpointer, as on LangGraph Platform
    assert [t["name"] for t in _data(parts, "tasks")] == ["one"] * 2 + ["two"] * 2 + ["three"] * 2


# -- events --------------------------------------------------------------------------


async def test_events_mode(client: LangGraphClient) -> None:
    thread_id, parts = await _stream(client, "chat", CHAT_INPUT, modes="events")
    assert thread_id is not None
    events: list[Any] = _data(parts, "events")
    assert [p.event for p in parts] == ["metadata"] + ["events"] * len(events)
    kinds = [e["event"] for e in events]
    assert (kinds[0], events[0]["name"], events[0]["parent_ids"]) == (
        "on_chain_start",
        "LangGraph",
        [],
    )
    assert (kinds[-1], events[-1]["name"]) == ("on_chain_end", "LangGraph")
    assert events[0]["run_id"] == parts[0].data["run_id"]
    assert {"on_chat_model_start", "on_chat_model_stream", "on_chat_model_end"} <= set(kinds)
    assert {e["name"] for e in events if e["event"] == "on_chain_start"} >= {"chat", "close"}
    tokens = [e["data"]["chunk"]["content"] for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(tokens) == CHAT_REPLY
    assert all(
        set(e) >= {"event", "name", "run_id", "parent_ids", "tags", "metadata", "data"}
        for e in events
    )
    # the hidden helper of `close` ran (its message is in the state) but sent no event
    assert not [e for e in events if "langsmith:hidden" in e["tags"]]
    assert "hidden_helper" not in {e["name"] for e in events}
    state: dict[str, Any] = dict(await client.threads.get_state(thread_id))
    assert [m["content"] for m in state["values"]["messages"]][1:] == [CHAT_REPLY, CLOSING]


async def test_events_with_other_modes_on_one_stream(client: LangGraphClient, server: str) -> None:
    modes: list[StreamMode] = ["events", "values", "messages-tuple", "custom"]
    _, parts = await _stream(client, "nested", {"steps": []}, modes=modes, stream_subgraphs=True)
    events = {_split(p.event)[0] for p in parts}
    assert events == {"metadata", "events", "values", "messages", "custom"}
    values = [p for p in parts if p.event == "values"]
    assert values[-1].data["steps"] == ["prepare", "finish"]
    assert any(p.event.startswith("values|inner:") for p in parts)
    assert [p.data for p in parts if p.event.startswith("custom|inner:")] == [{"from": "first"}]
    tokens = [p.data[0]["content"] for p in parts if p.event.startswith("messages|inner:")]
    assert "".join(tokens) == INNER_REPLY
    # the root graph's own stream chunks are the other modes' events, not `events`
    root_streams = [
        p
        for p in parts
        if p.event == "events" and p.data["event"] == "on_chain_stream" and not p.data["parent_ids"]
    ]
    assert root_streams == []
    # wait (which gets the final values from the same stream) still has the output
    body = {"assistant_id": "nested", "input": {"steps": []}, "stream_mode": ["events"]}
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        response = await http.post("/runs/wait", json=body)
    assert response.json() == {
        "steps": ["prepare", "finish"],
        "trail": ["first", "second"],
        "said": INNER_REPLY,
    }


async def test_error_ends_an_events_stream(client: LangGraphClient) -> None:
    thread_id, parts = await _stream(client, "failing", {"value": "x"}, modes=["events", "updates"])
    assert thread_id is not None
    assert parts[-1].event == "error"
    assert parts[-1].data == {"error": "ValueError", "message": "cannot handle 'x!'"}
    assert _data(parts, "updates") == [{"fine": {"value": "x!"}}]
    assert "events" in {p.event for p in parts}
    assert (await client.threads.get(thread_id))["status"] == "error"


@pytest.mark.parametrize("mode", ["tools", "lifecycle", "bogus"])
async def test_modes_of_other_endpoints_are_refused(server: str, mode: str) -> None:
    body = {"assistant_id": "counter", "input": COUNTER, "stream_mode": ["values", mode]}
    async with httpx.AsyncClient(base_url=server) as http:
        response = await http.post("/runs/stream", json=body)
    assert response.status_code == 422
    assert mode in response.json()["detail"]


# -- the benchmark keeps working -----------------------------------------------------


def test_bench_stream_smoke(services: Services) -> None:
    """bench/stream.py end to end with a few events: every one arrives, in order."""
    env = {**os.environ, "DATABASE_URI": services.database_uri, "REDIS_URI": services.redis_uri}
    command = [sys.executable, str(BENCH), "--events", "500", "--timeout", "30", "--json"]
    # Its own process group: should it hang, the bench and its broker processes all get
    # SIGTERM, and the bench still drops its database and Redis keys.
    with subprocess.Popen(
        command, env=env, stdout=PIPE, stderr=PIPE, text=True, start_new_session=True
    ) as bench:
        try:
            stdout, stderr = bench.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(bench.pid, signal.SIGTERM)
            stdout, stderr = bench.communicate(timeout=60)
            pytest.fail(f"bench/stream.py did not finish:\n{stdout}\n{stderr}")
    result = subprocess.CompletedProcess(command, bench.returncode, stdout, stderr)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["broker"]["received"] == summary["raw"]["received"] == 500
    assert summary["broker"]["lost"] == 0
    assert summary["broker"]["in_order"] is True
    assert summary["broker"]["per_second"] > 0 and summary["raw"]["per_second"] > 0
    assert "of the raw ceiling" in result.stdout
