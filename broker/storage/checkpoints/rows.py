"""What both checkpoint savers store and load, whatever the database.

The serde's typed blob is the exact record; `metadata` and `values` are readable JSON
renderings for ops and for metadata filters.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import WRITES_IDX_MAP, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.serde.base import SerializerProtocol

from broker import jsonable

# orjson writes NUL as \u0000, which JSONB rejects; an escaped backslash before
# "u0000" (an even run of backslashes) is literal text and must survive.
_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
# Carries metadata inside the typed blob when JSON would not return it unchanged.
EXACT_METADATA = "__broker_exact_metadata__"
CHECKPOINT_KEY = ("thread_id", "checkpoint_ns", "checkpoint_id")
WRITE_KEY = (*CHECKPOINT_KEY, "task_id", "idx")


def checkpoint_config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def checkpoint_row(
    serde: SerializerProtocol, checkpoint: Checkpoint, metadata: CheckpointMetadata
) -> dict[str, Any]:
    """The stored columns of a checkpoint but its key; JSON columns as JSON text."""
    readable = json_text(metadata)
    exact = jsonable.loads(readable) == metadata
    type_, blob = serde.dumps_typed(
        checkpoint if exact else {**checkpoint, EXACT_METADATA: metadata}
    )
    run_id = metadata.get("run_id")
    return {
        "type": type_,
        "checkpoint": blob,
        "metadata": readable,
        "values": json_text(state_channels(checkpoint["channel_values"])),
        "run_id": None if run_id is None else str(run_id),
        "step": metadata.get("step"),
    }


def load_checkpoint(
    serde: SerializerProtocol, type_: str, blob: bytes, readable_metadata: Any
) -> tuple[Checkpoint, CheckpointMetadata]:
    """The checkpoint and its metadata: the exact copy if the blob carries one."""
    checkpoint = serde.loads_typed((type_, blob))
    metadata = checkpoint.pop(EXACT_METADATA, readable_metadata)
    return checkpoint, metadata


def write_rows(
    serde: SerializerProtocol,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> list[dict[str, Any]]:
    """One row per pending write, keyed by WRITES_IDX_MAP's index (special channels < 0)."""
    key = {name: config["configurable"].get(name, "") for name in CHECKPOINT_KEY}
    by_idx: dict[int, dict[str, Any]] = {}
    for position, (channel, value) in enumerate(writes):
        idx = WRITES_IDX_MAP.get(channel, position)
        type_, blob = serde.dumps_typed(value)
        # A special channel repeated in one batch keeps its last value, as upserts would.
        by_idx[idx] = {**key, "task_id": task_id, "idx": idx, "channel": channel}
        by_idx[idx].update(type=type_, blob=blob, task_path=task_path)
    return [*by_idx.values()]


def next_version(current: str | None) -> str:
    # Same shape as the official savers: a zero-padded counter plus a random tiebreak.
    current_v = 0 if current is None else int(str(current).split(".")[0])
    return f"{current_v + 1:032}.{random.random():016}"


def state_channels(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Channel values without LangGraph's internal trigger channels ("branch:to:node")."""
    return {k: v for k, v in values.items() if not k.startswith("branch:")}


def json_text(value: Mapping[str, Any]) -> str:
    """jsonable's rendering as JSON text that Postgres accepts as JSONB."""
    try:
        raw = jsonable.dumps(value)
    except Exception:  # a readable copy must never fail a put; render per channel
        raw = jsonable.dumps({key: _jsonable_or_repr(item) for key, item in value.items()})
    if b"\\u0000" in raw:  # rare; the regex costs more than the rest of the rendering
        raw = _JSON_NUL.sub(rb"\1", raw)
    return raw.decode()


def _jsonable_or_repr(value: Any) -> Any:
    for render in (jsonable.to_jsonable, repr):
        try:
            return render(value)
        except Exception:  # even repr may raise; the put must not
            continue
    return f"<{type(value).__name__}>"
