"""One JSON encoding for everything that leaves a process: events, rows, bodies.

LangGraph chunks hold LangChain messages, pydantic models, dataclasses, Interrupts,
Sends and Commands; orjson handles the plain parts natively and calls `_default`
for the rest, so each value is encoded once, without an intermediate dict walk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from enum import Enum
from typing import Any
from uuid import UUID

import orjson
from langchain_core.messages import BaseMessage
from langgraph.types import Interrupt, Send

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS


def _default(obj: Any) -> Any:
    if isinstance(obj, Interrupt):
        return _interrupt(obj)
    if isinstance(obj, Send):
        return {"node": obj.node, "arg": obj.arg}
    if isinstance(obj, BaseMessage):  # a token's frame: model_dump took 8x as long
        return _message(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    to_json = getattr(obj, "to_json", None)
    if callable(to_json) and hasattr(obj, "lc_serializable"):
        return to_json()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return _default_plain(obj)


def _message(message: BaseMessage) -> dict[str, Any]:
    """`message.model_dump()`: LangChain's messages declare no serializers, so their
    fields (extra ones last) are the dump; nested models come back through `_default`."""
    fields = dict(message.__dict__)
    if message.__pydantic_extra__:
        fields.update(message.__pydantic_extra__)
    return fields


def _interrupt(interrupt: Interrupt) -> dict[str, Any]:
    # The wire shape is {"value", "id"}; the schema only when a node set one.
    rendered: dict[str, Any] = {"value": interrupt.value, "id": interrupt.id}
    schema = getattr(interrupt, "response_schema", None)
    if schema is not None:
        rendered["response_schema"] = schema
    return rendered


def _default_plain(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, UUID):
        return str(obj)
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, BaseException):
        return {"error": type(obj).__name__, "message": str(obj)}
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode(errors="replace")
    as_dict = getattr(obj, "_asdict", None)
    if callable(as_dict):
        return as_dict()
    return repr(obj)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes for any value a graph can produce."""
    return orjson.dumps(obj, default=_default, option=_OPTIONS)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def to_jsonable(obj: Any) -> Any:
    """The plain-JSON form of a value (for JSONB columns and response models)."""
    return orjson.loads(dumps(obj))
