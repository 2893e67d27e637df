"""The stream-mode encoder: names, filtering and payloads of the frames, without a server."""

from __future__ import annotations

from typing import Any

import orjson
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from api.schemas import STREAM_MODES as API_MODES
from worker.modes import STREAM_MODES, FrameEncoder, debug_chunk, langgraph_modes

NS = ("inner:1234",)
META = {"langgraph_node": "chat"}


def _encoder(*modes: str, subgraphs: bool = False) -> tuple[FrameEncoder, list[tuple[str, Any]]]:
    frames: list[tuple[str, Any]] = []

    def emit(frame: bytes) -> None:
        head, data, *_ = frame.split(b"\r\n")
        assert frame.endswith(b"\r\n\r\n")
        frames.append((head.removeprefix(b"event: ").decode(), orjson.loads(data[6:])))

    return FrameEncoder(modes, subgraphs=subgraphs, emit=emit), frames


def test_api_accepts_exactly_the_modes_the_worker_encodes() -> None:
    assert API_MODES == STREAM_MODES


def test_langgraph_modes_always_include_values() -> None:
    assert langgraph_modes(["updates"]) == ["updates", "values"]
    assert langgraph_modes(["messages-tuple", "messages", "events"]) == ["messages", "values"]
    assert langgraph_modes(["debug", "tasks", "checkpoints", "custom"]) == [
        "checkpoints",
        "custom",
        "debug",
        "tasks",
        "values",
    ]


def test_only_requested_modes_are_encoded() -> None:
    encode, frames = _encoder("updates")
    encode((), "values", {"a": 1})
    encode((), "updates", {"node": {"a": 1}})
    assert frames == [("updates", {"node": {"a": 1}})]


def test_subgraph_events_need_stream_subgraphs_except_tokens() -> None:
    encode, frames = _encoder("updates", "custom", "messages-tuple")
    encode(NS, "updates", {"first": {}})
    encode(NS, "custom", "x")
    encode(NS, "messages", (AIMessageChunk(content="hi", id="m"), META))
    assert [name for name, _ in frames] == ["messages"]
    encode, frames = _encoder("updates", "custom", "messages-tuple", subgraphs=True)
    encode(NS, "updates", {"first": {}})
    encode((*NS, "deeper:5"), "custom", "x")
    encode(NS, "messages", (AIMessageChunk(content="hi", id="m"), META))
    encode((), "custom", "root")
    assert [name for name, _ in frames] == [
        "updates|inner:1234",
        "custom|inner:1234|deeper:5",
        "messages|inner:1234",
        "custom",
    ]


def test_messages_tuple_is_chunk_and_metadata() -> None:
    encode, frames = _encoder("messages-tuple")
    encode((), "messages", (AIMessageChunk(content="hi", id="m"), META))
    [(name, (chunk, metadata))] = frames
    assert name == "messages"
    assert (chunk["type"], chunk["content"], chunk["id"]) == ("AIMessageChunk", "hi", "m")
    assert metadata == META


def test_legacy_messages_accumulate_chunks() -> None:
    encode, frames = _encoder("messages", subgraphs=True)
    for token in ("Hello", ",", " world"):
        encode(NS, "messages", (AIMessageChunk(content=token, id="m1"), META))
    encode((), "messages", (AIMessage(content="Done.", id="m2"), META))
    assert [name for name, _ in frames] == [
        "messages/metadata|inner:1234",
        "messages/partial|inner:1234",
        "messages/partial|inner:1234",
        "messages/partial|inner:1234",
        "messages/metadata",
        "messages/complete",
    ]
    assert frames[0][1] == {"m1": {"metadata": META}}
    partials = [data for name, data in frames if name.startswith("messages/partial")]
    assert [p[0]["content"] for p in partials] == ["Hello", "Hello,", "Hello, world"]
    assert {p[0]["type"] for p in partials} == {"ai"}
    assert frames[-1][1] == [AIMessage(content="Done.", id="m2").model_dump()]


def test_both_message_modes_together() -> None:
    encode, frames = _encoder("messages", "messages-tuple")
    encode((), "messages", (AIMessageChunk(content="a", id="m"), META))
    assert [name for name, _ in frames] == ["messages", "messages/metadata", "messages/partial"]


def test_events_leave_out_hidden_ones() -> None:
    encode, frames = _encoder("events")
    shown = {"event": "on_chain_start", "name": "node", "tags": ["graph:step:1"], "data": {}}
    hidden = {"event": "on_chain_start", "name": "helper", "tags": ["langsmith:hidden"]}
    encode((), "events", shown)
    encode((), "events", hidden)
    encode((), "events", {"event": "on_custom_event", "name": "x", "data": 1})
    assert [data["name"] for _, data in frames] == ["node", "x"]
    assert {name for name, _ in frames} == {"events"}


def test_debug_checkpoint_gains_checkpoint_and_parent() -> None:
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c2"}}
    parent = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}}
    sub = {"configurable": {"thread_id": "t", "checkpoint_ns": "inner:9"}}
    chunk: dict[str, Any] = {
        "step": 1,
        "timestamp": "2025-01-01T00:00:00+00:00",
        "type": "checkpoint",
        "payload": {
            "config": config,
            "parent_config": parent,
            "values": {},
            "metadata": {},
            "next": ["inner", "plain"],
            "tasks": [
                {"id": "9", "name": "inner", "interrupts": [], "state": sub},
                {"id": "8", "name": "plain", "interrupts": [], "state": None},
            ],
        },
    }
    payload = debug_chunk(chunk)["payload"]
    assert payload["checkpoint"] == {"checkpoint_id": "c2", "thread_id": "t", "checkpoint_ns": ""}
    assert payload["parent_checkpoint"] == {
        "checkpoint_id": "c1",
        "thread_id": "t",
        "checkpoint_ns": "",
    }
    assert payload["tasks"] == [
        {"id": "9", "name": "inner", "interrupts": [], "checkpoint": sub["configurable"]},
        {"id": "8", "name": "plain", "interrupts": [], "state": None},
    ]
    assert payload["config"] == config
    first = debug_chunk({**chunk, "payload": {**chunk["payload"], "parent_config": None}})
    assert first["payload"]["parent_checkpoint"] is None
    task = {"step": 1, "type": "task", "payload": {"id": "9"}}
    assert debug_chunk(task) is task


def test_messages_tuple_frames_are_the_pair_encoded() -> None:
    """Each token's frame is `[message, metadata]` as LangChain dumps them, whichever
    model call (metadata) it came from."""
    frames: list[bytes] = []
    encode = FrameEncoder(["messages-tuple"], subgraphs=False, emit=frames.append)
    first: dict[str, Any] = dict(META)
    second: dict[str, Any] = {"langgraph_node": "other", "tags": ["x"]}
    chunks: list[tuple[BaseMessage, dict[str, Any]]] = [
        (AIMessageChunk(content=f" t{i}", id="m"), first) for i in range(3)
    ]
    chunks.append((AIMessage("done", id="n"), second))
    for chunk in chunks:
        encode((), "messages", chunk)
    datas = [frame.split(b"\r\n")[1].removeprefix(b"data: ") for frame in frames]
    assert datas == [orjson.dumps([m.model_dump(), meta]) for m, meta in chunks]
