"""The v2 encoder: a thread's mode-tagged SSE frames → the protocol's events.

One encoder per connection reads every frame of the thread's runs in order (replayed
from the runs' logs, then live) and keeps what the translation needs: the current run,
the open messages and their content blocks, the subgraphs seen, the interrupts asked.
It is deterministic, so two connections (or a reconnect) give an event the same `seq`:
a frame with id `<ms>-<n>` (a resumable run's) yields events numbered
`ms·10⁶ + n·10³ + i`; a frame without id (a run that is not resumable) yields events
without `seq`, which cannot be replayed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from broker import jsonable
from broker.events import frame_event, frame_id

Event = dict[str, Any]

_FRAME = 10**3  # events one frame may yield
_MS = 10**6  # frames one run's publisher may number within a millisecond's range
_TERMINAL = 990  # the sub-index of events that end a run: after its last frame's own

ROLES = {"ai": "ai", "AIMessageChunk": "ai", "human": "human", "system": "system"}


def frame_data(frame: bytes) -> Any:
    start = frame.index(b"\r\ndata: ") + 8
    return jsonable.loads(frame[start : frame.index(b"\r\n", start)])


def frame_seq(event_id: str) -> int:
    ms, n = event_id.split("-")
    return int(ms) * _MS + int(n) * _FRAME


def since_event_id(since: int) -> str:
    """The log id after which a replay must start to include every event after `since`."""
    ms, rest = divmod(since, _MS)
    n = rest // _FRAME
    return f"{ms}-{n - 1}" if n else f"{max(ms - 1, 0)}-{2**63}"


@dataclass
class _Message:
    id: str
    blocks: dict[Any, tuple[int, dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _Run:
    run_id: str
    error: str | None = None
    ended: bool = False
    interrupted: bool = False
    namespaces: dict[tuple[str, ...], str] = field(default_factory=dict)  # open → status
    messages: dict[tuple[tuple[str, ...], str], _Message] = field(default_factory=dict)
    interrupts: set[str] = field(default_factory=set)
    tool_calls: dict[str, tuple[str, Any]] = field(default_factory=dict)  # id → name, args
    last_seq: int | None = None


class V2Encoder:
    def __init__(self) -> None:
        self._run: _Run | None = None

    def feed(self, frame: bytes) -> list[Event]:
        """The protocol events one SSE frame of a run (or `run_done`) becomes."""
        name = frame_event(frame)
        mode, *segments = name.split("|")
        event_id = frame_id(frame)
        base = frame_seq(event_id) if event_id is not None else None
        data = frame_data(frame)
        if mode == "run_done":
            return self._number(self._end(data), self._terminal_base())
        if mode == "metadata":
            self._run = _Run(str(data.get("run_id")))
        run = self._run or self._adopt()
        if base is not None:
            run.last_seq = base
        return self._number(self._translate(run, mode, segments, data), base)

    def _adopt(self) -> _Run:
        # Frames of a run whose start we did not see (joined mid-run, not resumable).
        self._run = _Run("")
        return self._run

    def _terminal_base(self) -> int | None:
        run = self._run
        if run is None or run.last_seq is None:
            return None
        return run.last_seq + _TERMINAL

    def _number(self, events: list[tuple[str, list[str], Any]], base: int | None) -> list[Event]:
        out = []
        now = int(time.time() * 1000)
        for index, (method, namespace, data) in enumerate(events):
            event: Event = {
                "type": "event",
                "method": method,
                "params": {"namespace": namespace, "timestamp": now, "data": data},
            }
            if base is not None:
                seq = base + min(index, _FRAME - 1)
                event["seq"] = seq
                event["event_id"] = str(seq)
            node = data.get("node") if isinstance(data, dict) else None
            if method == "updates" and isinstance(node, str):
                event["params"]["node"] = node
            out.append(event)
        return out

    # -- translation ----------------------------------------------------------------

    def _translate(
        self, run: _Run, mode: str, segments: list[str], data: Any
    ) -> list[tuple[str, list[str], Any]]:
        if mode == "metadata":
            return [("lifecycle", [], {"event": "running", "run_id": run.run_id})]
        if mode == "error":
            return self._fail(run, _error_message(data))
        events = self._open_namespaces(run, segments)
        if mode == "values":
            events += self._values(run, segments, data)
        elif mode == "updates":
            events += self._updates(run, segments, data)
        elif mode == "messages":
            events += self._messages(run, segments, data)
        elif mode == "tasks":
            events += [("tasks", segments, data), *self._task_result(run, segments, data)]
        elif mode == "custom":
            events.append(("custom", segments, {"payload": data}))
        elif mode == "checkpoints":
            events.append(("checkpoints", segments, data))
        return events

    def _open_namespaces(self, run: _Run, segments: list[str]) -> list[tuple[str, list[str], Any]]:
        events = []
        for depth in range(1, len(segments) + 1):
            path = tuple(segments[:depth])
            if path not in run.namespaces:
                run.namespaces[path] = "started"
                graph = path[-1].split(":", 1)[0]
                events.append(("lifecycle", list(path), {"event": "started", "graph_name": graph}))
        return events

    def _task_result(
        self, run: _Run, segments: list[str], data: Any
    ) -> list[tuple[str, list[str], Any]]:
        """A task's result in namespace P ends the subgraph `P + [name:id]`, if it ran one."""
        if not isinstance(data, dict) or "result" not in data:
            return []
        path = (*segments, f"{data.get('name')}:{data.get('id')}")
        if run.namespaces.get(path) != "started":
            return []
        if data.get("interrupts"):
            status = "interrupted"
        elif data.get("error"):
            status = "failed"
        else:
            status = "completed"
        return self._close(run, path, status, str(data["error"]) if data.get("error") else None)

    def _close(
        self, run: _Run, path: tuple[str, ...], status: str, error: str | None = None
    ) -> list[tuple[str, list[str], Any]]:
        events = []
        for open_path in sorted(run.namespaces, key=len, reverse=True):
            inside = open_path[: len(path)] == path
            if inside and run.namespaces[open_path] == "started":
                run.namespaces[open_path] = status
                payload: dict[str, Any] = {
                    "event": status,
                    "graph_name": open_path[-1].split(":", 1)[0],
                }
                if error is not None:
                    payload["error"] = error
                events.append(("lifecycle", list(open_path), payload))
        return events

    def _values(
        self, run: _Run, segments: list[str], data: Any
    ) -> list[tuple[str, list[str], Any]]:
        if not isinstance(data, dict):
            return [("values", segments, data)]
        events = self._interrupts(run, segments, data.get("__interrupt__"))
        values = {k: v for k, v in data.items() if k != "__interrupt__"}
        if values or "__interrupt__" not in data:
            events.append(("values", segments, values))
        return events

    def _interrupts(
        self, run: _Run, segments: list[str], interrupts: Any
    ) -> list[tuple[str, list[str], Any]]:
        events = []
        for interrupt in interrupts or ():
            interrupt_id = interrupt.get("id") if isinstance(interrupt, dict) else None
            if not isinstance(interrupt_id, str) or interrupt_id in run.interrupts:
                continue
            run.interrupts.add(interrupt_id)
            value = interrupt.get("value")
            # `payload` is the protocol's name; langgraph_sdk 0.4 reads `value`.
            request = {"interrupt_id": interrupt_id, "payload": value, "value": value}
            events.append(("input.requested", segments, request))
        if events and not segments:
            run.interrupted = True
        return events

    def _updates(
        self, run: _Run, segments: list[str], data: Any
    ) -> list[tuple[str, list[str], Any]]:
        if not isinstance(data, dict):
            return [("updates", segments, {"values": data})]
        events = self._interrupts(run, segments, data.get("__interrupt__"))
        for node, values in data.items():
            if node == "__interrupt__":
                continue
            events.append(("updates", segments, {"node": node, "values": values}))
            events += self._tools(run, segments, values)
        return events

    def _tools(
        self, run: _Run, segments: list[str], values: Any
    ) -> list[tuple[str, list[str], Any]]:
        """A node's new messages: an AI message's tool calls are remembered, and each tool
        message is that call's start and end on the `tools` channel."""
        events: list[tuple[str, list[str], Any]] = []
        for message in _messages_of(values):
            kind = message.get("type")
            for call in message.get("tool_calls") or () if kind in ("ai", "AIMessageChunk") else ():
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    run.tool_calls[call["id"]] = (str(call.get("name") or ""), call.get("args"))
            if kind != "tool" or not isinstance(message.get("tool_call_id"), str):
                continue
            call_id = message["tool_call_id"]
            name, args = run.tool_calls.get(call_id, (str(message.get("name") or ""), None))
            events.append(
                (
                    "tools",
                    segments,
                    {
                        "event": "tool-started",
                        "tool_call_id": call_id,
                        "tool_name": name,
                        "input": args,
                    },
                )
            )
            if message.get("status") == "error":
                end = {
                    "event": "tool-error",
                    "tool_call_id": call_id,
                    "message": str(message.get("content")),
                }
            else:
                end = {
                    "event": "tool-finished",
                    "tool_call_id": call_id,
                    "output": message.get("content"),
                }
            events.append(("tools", segments, end))
        return events

    def _messages(
        self, run: _Run, segments: list[str], data: Any
    ) -> list[tuple[str, list[str], Any]]:
        if not isinstance(data, list) or len(data) != 2 or not isinstance(data[0], dict):
            return []
        chunk, metadata = data[0], data[1] if isinstance(data[1], dict) else {}
        kind = chunk.get("type")
        if kind not in ROLES:
            return []  # tool results travel on the `tools` channel
        node = metadata.get("langgraph_node")
        message_id = str(chunk.get("id") or "")
        key = (tuple(segments), message_id)
        events: list[tuple[str, list[str], Any]] = []
        message = run.messages.get(key)
        if message is None:
            message = run.messages[key] = _Message(message_id)
            start: dict[str, Any] = {
                "event": "message-start",
                "role": ROLES[kind],
                "id": message_id,
            }
            if isinstance(node, str):
                start["metadata"] = {"langgraph_node": node}
            events.append(("messages", segments, start))
        for block_key, block in _blocks(chunk):
            events += self._block(segments, message, block_key, block)
        if kind != "AIMessageChunk" or chunk.get("chunk_position") == "last":
            events += self._finish(segments, run, key, chunk)
        return events

    def _block(
        self, segments: list[str], message: _Message, key: Any, block: dict[str, Any]
    ) -> list[tuple[str, list[str], Any]]:
        events: list[tuple[str, list[str], Any]] = []
        if key not in message.blocks:
            index = len(message.blocks)
            message.blocks[key] = (index, dict(block))
            events.append(
                (
                    "messages",
                    segments,
                    {"event": "content-block-start", "index": index, "content": _skeleton(block)},
                )
            )
        else:
            index, seen = message.blocks[key]
            message.blocks[key] = (index, _accumulate(seen, block))
        delta = _delta(block)
        if delta is not None:
            events.append(
                (
                    "messages",
                    segments,
                    {"event": "content-block-delta", "index": index, "delta": delta},
                )
            )
        return events

    def _finish(
        self,
        segments: list[str],
        run: _Run,
        key: tuple[tuple[str, ...], str],
        chunk: dict[str, Any],
    ) -> list[tuple[str, list[str], Any]]:
        message = run.messages.pop(key)
        events = [
            (
                "messages",
                segments,
                {"event": "content-block-finish", "index": index, "content": _finalize(block)},
            )
            for index, block in message.blocks.values()
        ]
        finish: dict[str, Any] = {"event": "message-finish"}
        usage = chunk.get("usage_metadata")
        if isinstance(usage, dict):
            finish["usage"] = {
                k: usage[k] for k in ("input_tokens", "output_tokens", "total_tokens") if k in usage
            }
        events.append(("messages", segments, finish))
        return events

    # -- the end of a run -----------------------------------------------------------

    def _fail(self, run: _Run, error: str) -> list[tuple[str, list[str], Any]]:
        run.error = error
        return self._terminal(run, "failed")

    def _end(self, data: Any) -> list[tuple[str, list[str], Any]]:
        data = data if isinstance(data, dict) else {}
        run_id = str(data.get("run_id") or "")
        run = self._run
        if run is None or (run_id and run.run_id not in ("", run_id)):
            # A run that ended without a frame we saw (cancelled while pending, or
            # not resumable and over before we joined) still ends for the client.
            run = self._run = _Run(run_id)
        if run.ended:
            return []
        status = str(data.get("status") or "success")
        if status == "success":
            return self._terminal(run, "interrupted" if run.interrupted else "completed")
        if status == "error":
            return self._fail(run, run.error or "Run failed")
        run.error = {"interrupted": "Run was cancelled", "timeout": "Run timed out"}.get(
            status, f"Run ended {status}"
        )
        return self._terminal(run, "failed")

    def _terminal(self, run: _Run, status: str) -> list[tuple[str, list[str], Any]]:
        run.ended = True
        child = "failed" if status == "failed" else "completed"
        events = self._close(run, (), child, run.error if status == "failed" else None)
        events = [e for e in events if e[1]]  # the root's own lifecycle is below
        for key in list(run.messages):
            events.append(("messages", list(key[0]), {"event": "message-finish"}))
            del run.messages[key]
        root: dict[str, Any] = {"event": status, "run_id": run.run_id}
        if status == "failed" and run.error:
            root["error"] = run.error
        events.append(("lifecycle", [], root))
        return events


def _error_message(data: Any) -> str:
    if isinstance(data, dict):
        message = data.get("message") or data.get("error")
        if message:
            return str(message)
    return str(data)


def _messages_of(values: Any) -> list[dict[str, Any]]:
    if not isinstance(values, dict):
        return []
    found = values.get("messages")
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list):
        return []
    return [m for m in found if isinstance(m, dict)]


def _blocks(chunk: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """A message chunk's content blocks, keyed as they accumulate across chunks: text
    (and reasoning) by kind, tool-call chunks by their index."""
    blocks: list[tuple[Any, dict[str, Any]]] = []
    content = chunk.get("content")
    if isinstance(content, str):
        if content:
            blocks.append(("text", {"type": "text", "text": content}))
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str) and part:
                blocks.append(("text", {"type": "text", "text": part}))
            elif isinstance(part, dict) and part.get("type") in ("text", "reasoning"):
                kind = part["type"]
                text = part.get(kind) or ""
                if text:
                    blocks.append((kind, {"type": kind, kind: text}))
    chunks = chunk.get("tool_call_chunks")
    if chunks:
        for position, call in enumerate(chunks):
            index = call.get("index", position)
            blocks.append(
                (
                    ("tool", index),
                    {
                        "type": "tool_call_chunk",
                        "id": call.get("id"),
                        "name": call.get("name"),
                        "args": call.get("args") or "",
                    },
                )
            )
    elif chunk.get("type") == "ai":
        for position, call in enumerate(chunk.get("tool_calls") or ()):
            args = json.dumps(call.get("args") or {})
            blocks.append(
                (
                    ("tool", position),
                    {
                        "type": "tool_call_chunk",
                        "id": call.get("id"),
                        "name": call.get("name"),
                        "args": args,
                    },
                )
            )
    return blocks


def _skeleton(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "tool_call_chunk":
        return {
            "type": "tool_call_chunk",
            "id": block.get("id"),
            "name": block.get("name"),
            "args": "",
        }
    return {"type": block["type"], block["type"]: ""}


def _delta(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block["type"]
    if kind == "text":
        return {"type": "text-delta", "text": block["text"]}
    if kind == "reasoning":
        return {"type": "reasoning-delta", "reasoning": block["reasoning"]}
    if block.get("args"):
        return {"type": "tool-call-delta", "args": block["args"]}
    return None


def _accumulate(seen: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    kind = seen["type"]
    if kind in ("text", "reasoning"):
        return {**seen, kind: seen[kind] + block[kind]}
    return {
        **seen,
        "id": seen.get("id") or block.get("id"),
        "name": seen.get("name") or block.get("name"),
        "args": (seen.get("args") or "") + (block.get("args") or ""),
    }


def _finalize(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] != "tool_call_chunk":
        return block
    raw = block.get("args") or "{}"
    try:
        args = json.loads(raw)
    except ValueError:
        return {
            "type": "invalid_tool_call",
            "id": block.get("id"),
            "name": block.get("name"),
            "args": raw,
            "error": "Failed to parse tool call arguments as JSON",
        }
    return {
        "type": "tool_call",
        "id": block.get("id") or "",
        "name": block.get("name") or "",
        "args": args,
    }
