"""Small pure pieces: ids, encoding, framing, settings."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from uuid import UUID

from langchain_core.messages import AIMessageChunk
from langgraph.types import Interrupt, Send

from broker import jsonable
from broker.events import sse_frame
from broker.ids import uuid7
from broker.settings import Settings, async_database_url


def test_uuid7_is_version_7_and_time_ordered() -> None:
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    assert (first.version, second.version) == (7, 7)
    assert str(first) < str(second)
    assert UUID(str(first)) == first


def test_jsonable_renders_langgraph_values() -> None:
    value = {
        "at": datetime(2024, 7, 25, 15, 35, 42, 598503, tzinfo=UTC),
        "interrupt": Interrupt(value="ask", id="i1"),
        "send": Send("node", {"x": 1}),
        "chunk": AIMessageChunk(content="hi", id="m1"),
        "tuple": (1, 2),
    }
    rendered = jsonable.loads(jsonable.dumps(value))
    assert rendered["at"] == "2024-07-25T15:35:42.598503+00:00"
    assert rendered["interrupt"] == {"value": "ask", "id": "i1"}
    assert rendered["send"] == {"node": "node", "arg": {"x": 1}}
    assert (rendered["chunk"]["type"], rendered["chunk"]["content"]) == ("AIMessageChunk", "hi")
    assert rendered["tuple"] == [1, 2]


def test_sse_frame_is_one_event() -> None:
    assert sse_frame("values", b'{"a":1}') == b'event: values\r\ndata: {"a":1}\r\n\r\n'
    assert sse_frame("custom", b"1", "5-0").endswith(b"id: 5-0\r\n\r\n")


def test_database_uri_forms() -> None:
    assert async_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_database_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    settings = Settings(DATABASE_URI="postgres://x@y:1/z")
    assert settings.async_database_url == "postgresql+asyncpg://x@y:1/z"


def test_a_copy_with_another_database_connects_to_it() -> None:
    """`model_copy` copied a cached URL: every copy connected to the first database."""
    settings = Settings(DATABASE_URI="postgresql://u@h:1/first")
    assert settings.async_database_url.endswith("/first")
    copy = settings.model_copy(update={"database_uri": "postgresql://u@h:1/second"})
    assert copy.async_database_url.endswith("/second")
