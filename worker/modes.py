"""Stream modes: which LangGraph modes a run asks for, and how each chunk becomes SSE frames.

LangGraph yields `(namespace, mode, chunk)`; `FrameEncoder` turns each into zero or more
ready SSE frames named as the LangGraph Platform names them (api-contract.md section 3):
`<event>` for the root graph, `<event>|<node>:<task_id>|…` inside subgraphs when the
client asked for `stream_subgraphs`. Every frame is encoded once, here, with orjson.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk, message_chunk_to_message

from broker import jsonable
from broker.events import sse_frame

Emit = Callable[[bytes], None]

# Requested stream mode → the LangGraph stream mode that produces it. `events` has none:
# it comes from `astream_events`, which drives the graph instead of `astream`.
LANGGRAPH_MODES: dict[str, str | None] = {
    "values": "values",
    "updates": "updates",
    "messages-tuple": "messages",
    "messages": "messages",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "events": None,
}
STREAM_MODES = frozenset(LANGGRAPH_MODES)

EVENTS = "events"  # the pseudo LangGraph mode under which `astream_events` events travel
HIDDEN_TAG = "langsmith:hidden"


def langgraph_modes(requested: Iterable[str]) -> list[str]:
    """What to ask `astream` for: the requested modes' sources, plus `values` (the output)."""
    modes = {LANGGRAPH_MODES[m] for m in requested}
    return sorted({"values", *(m for m in modes if m is not None)})


def event_name(event: str, namespace: tuple[str, ...], subgraphs: bool) -> str:
    if namespace and subgraphs:
        return "|".join((event, *namespace))
    return event


class FrameEncoder:
    """Encodes one run's chunks for the requested modes and hands each frame to `emit`."""

    def __init__(self, requested: Iterable[str], *, subgraphs: bool, emit: Emit) -> None:
        self.requested = frozenset(requested)
        self.subgraphs = subgraphs
        self._emit = emit
        self._tuples = "messages-tuple" in self.requested
        self._legacy = "messages" in self.requested
        # Legacy `messages` mode: each message so far, by id (chunks concatenated).
        self._messages: dict[str, BaseMessage] = {}

    def __call__(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> None:
        # Without `stream_subgraphs` only the root graph's events go out, except LLM
        # tokens: callbacks reach them from any depth, as on LangGraph Platform.
        if namespace and not self.subgraphs and mode != "messages":
            return
        if mode == "messages":
            self._message(namespace, chunk)
        elif mode == EVENTS:
            self._event(chunk)
        elif mode in self.requested:
            if mode == "debug":
                chunk = debug_chunk(chunk)
            self._frame(mode, namespace, jsonable.dumps(chunk))

    def _frame(self, event: str, namespace: tuple[str, ...], data: bytes) -> None:
        self._emit(sse_frame(event_name(event, namespace, self.subgraphs), data))

    def _event(self, event: dict[str, Any]) -> None:
        if HIDDEN_TAG in (event.get("tags") or ()):
            return
        self._emit(sse_frame(EVENTS, jsonable.dumps(event)))

    def _message(
        self, namespace: tuple[str, ...], chunk: tuple[BaseMessage, dict[str, Any]]
    ) -> None:
        if self._tuples:
            self._frame("messages", namespace, jsonable.dumps(chunk))
        if self._legacy:
            self._legacy_message(namespace, *chunk)

    def _legacy_message(
        self, namespace: tuple[str, ...], message: BaseMessage, metadata: dict[str, Any]
    ) -> None:
        """`messages/metadata` once per message id, then its `partial` or `complete` state."""
        key = message.id or ""
        seen = self._messages.get(key)
        if seen is None:
            self._frame(
                "messages/metadata", namespace, jsonable.dumps({key: {"metadata": metadata}})
            )
        if not isinstance(message, BaseMessageChunk):
            self._messages[key] = message
            self._frame("messages/complete", namespace, jsonable.dumps([message]))
            return
        if isinstance(seen, BaseMessageChunk):
            message = seen + message
        self._messages[key] = message
        self._frame(
            "messages/partial", namespace, jsonable.dumps([message_chunk_to_message(message)])
        )


def debug_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    """A `debug` chunk as LangGraph Platform sends it: checkpoint payloads also name their
    checkpoint and parent as `{thread_id, checkpoint_ns, checkpoint_id[, checkpoint_map]}`,
    and a subgraph task's `state` (a config) becomes `checkpoint`."""
    payload = chunk.get("payload")
    if chunk.get("type") != "checkpoint" or not payload:
        return chunk
    checkpoint = {
        **payload,
        "checkpoint": checkpoint_of(payload.get("config")),
        "parent_checkpoint": checkpoint_of(payload.get("parent_config")),
        "tasks": [_debug_task(task) for task in payload.get("tasks") or ()],
    }
    return {**chunk, "payload": checkpoint}


def checkpoint_of(config: dict[str, Any] | None) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    checkpoint = {
        "checkpoint_id": configurable["checkpoint_id"],
        "thread_id": configurable["thread_id"],
    }
    if "checkpoint_ns" in configurable:
        checkpoint["checkpoint_ns"] = configurable["checkpoint_ns"] or ""
    if "checkpoint_map" in configurable:
        checkpoint["checkpoint_map"] = configurable["checkpoint_map"]
    return checkpoint


def _debug_task(task: dict[str, Any]) -> dict[str, Any]:
    state = task.get("state")
    if not isinstance(state, dict) or not state.get("configurable"):
        return task
    rendered = {k: v for k, v in task.items() if k != "state"}
    rendered["checkpoint"] = state["configurable"]
    return rendered
