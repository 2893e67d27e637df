"""The v2 encoder: frames → protocol events, numbered so reconnects can resume."""

from __future__ import annotations

from typing import Any

from api.protocol.encoder import V2Encoder, frame_seq, since_event_id
from api.protocol.stream import EventFilter
from broker import jsonable
from broker.events import sse_frame


def frame(event: str, data: Any, event_id: str | None = "1000-0") -> bytes:
    return sse_frame(event, jsonable.dumps(data), event_id)


def chunk(text: str, **extra: Any) -> list[Any]:
    return [
        {"type": "AIMessageChunk", "id": "m1", "content": text, **extra},
        {"langgraph_node": "chat"},
    ]


def test_a_run_streams_tokens_then_ends() -> None:
    encoder = V2Encoder()
    events = encoder.feed(frame("metadata", {"run_id": "r1", "attempt": 1}, "1000-0"))
    events += encoder.feed(frame("messages", chunk("Hi"), "1000-1"))
    events += encoder.feed(frame("messages", chunk(" there"), "1000-2"))
    events += encoder.feed(frame("messages", chunk("", chunk_position="last"), "1000-3"))
    events += encoder.feed(frame("run_done", {"run_id": "r1", "status": "success"}, None))
    shapes = [(e["method"], e["params"]["data"].get("event")) for e in events]
    assert shapes == [
        ("lifecycle", "running"),
        ("messages", "message-start"),
        ("messages", "content-block-start"),
        ("messages", "content-block-delta"),
        ("messages", "content-block-delta"),
        ("messages", "content-block-finish"),
        ("messages", "message-finish"),
        ("lifecycle", "completed"),
    ]
    assert events[5]["params"]["data"]["content"] == {"type": "text", "text": "Hi there"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)) and events[0]["seq"] == frame_seq("1000-0")
    assert [e["event_id"] for e in events] == [str(s) for s in seqs]


def test_interrupts_go_to_the_input_channel_once() -> None:
    encoder = V2Encoder()
    encoder.feed(frame("metadata", {"run_id": "r1"}))
    asked = {"__interrupt__": [{"id": "i1", "value": {"q": "?"}}]}
    events = encoder.feed(frame("values", asked)) + encoder.feed(frame("updates", asked))
    assert [e["method"] for e in events] == ["input.requested"]
    assert events[0]["params"]["data"] == {
        "interrupt_id": "i1",
        "payload": {"q": "?"},
        "value": {"q": "?"},
    }
    end = encoder.feed(frame("run_done", {"status": "success"}, None))
    assert end[-1]["params"]["data"]["event"] == "interrupted"


def test_an_error_fails_open_subgraphs_then_the_root() -> None:
    encoder = V2Encoder()
    encoder.feed(frame("metadata", {"run_id": "r1"}))
    inner = encoder.feed(frame("custom|inner:t1", {"x": 1}))
    assert [(e["method"], e["params"]["namespace"]) for e in inner] == [
        ("lifecycle", ["inner:t1"]),
        ("custom", ["inner:t1"]),
    ]
    failed = encoder.feed(frame("error", {"error": "ValueError", "message": "boom"}))
    assert [(e["params"]["namespace"], e["params"]["data"]["event"]) for e in failed] == [
        (["inner:t1"], "failed"),
        ([], "failed"),
    ]
    assert failed[-1]["params"]["data"]["error"] == "boom"
    assert encoder.feed(frame("run_done", {"status": "error"}, None)) == []


def test_frames_without_ids_give_events_without_seq() -> None:
    encoder = V2Encoder()
    events = encoder.feed(frame("values", {"a": 1}, None))
    assert "seq" not in events[0] and "event_id" not in events[0]


def test_since_resumes_at_the_frame_that_holds_it() -> None:
    assert since_event_id(frame_seq("1000-5") + 2) == "1000-4"
    assert since_event_id(frame_seq("1000-0") + 1) == f"999-{2**63}"


def test_filters_match_as_the_sdk_does() -> None:
    event = {
        "type": "event",
        "seq": 10,
        "method": "custom",
        "params": {"namespace": ["a:1"], "data": {}},
    }
    assert EventFilter(["custom"]).wants(event)
    assert not EventFilter(["custom"], since=10).wants(event)
    assert not EventFilter(["custom"], namespaces=[[]], depth=0).wants(event)
    assert EventFilter(["custom"], namespaces=[["a"]], depth=0).wants(event)
    assert not EventFilter(["values"]).wants(event)


def test_a_run_ended_unseen_still_ends() -> None:
    encoder = V2Encoder()
    encoder.feed(frame("metadata", {"run_id": "r1"}))
    encoder.feed(frame("run_done", {"run_id": "r1", "status": "success"}, None))
    cancelled = encoder.feed(frame("run_done", {"run_id": "r2", "status": "interrupted"}, None))
    assert [e["params"]["data"] for e in cancelled] == [
        {"event": "failed", "run_id": "r2", "error": "Run was cancelled"}
    ]
