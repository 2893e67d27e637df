"""LangChain messages encode as their `model_dump()` (jsonable's fast path for tokens)."""

from __future__ import annotations

import orjson
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel

from broker import jsonable


class Payload(BaseModel):
    name: str
    size: int


MESSAGES: list[BaseMessage] = [
    AIMessageChunk(content=" t12", id="run-1"),
    AIMessageChunk(
        content="", tool_call_chunks=[{"name": "f", "args": "{", "id": "1", "index": 0}]
    ),
    AIMessage(
        "x",
        tool_calls=[{"name": "f", "args": {"a": 1}, "id": "1"}],
        usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        response_metadata={"model": "m"},
    ),
    HumanMessage([{"type": "text", "text": "hi"}], id="h", name="me"),
    HumanMessage("with an extra field", custom="kept"),
    SystemMessage("be brief"),
    ToolMessage("r", tool_call_id="1", artifact=Payload(name="a", size=1), status="error"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_message_encodes_as_its_model_dump(message: BaseMessage) -> None:
    expected = orjson.dumps(message.model_dump(mode="json"))
    assert jsonable.dumps(message) == expected
    assert jsonable.dumps((message, {"k": 1})) == b"[" + expected + b',{"k":1}]'
