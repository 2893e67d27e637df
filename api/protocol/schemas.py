"""The protocol's request bodies (pydantic at the edge, as the rest of api/)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

CHANNELS = frozenset(
    {
        "values",
        "updates",
        "messages",
        "tools",
        "lifecycle",
        "input",
        "tasks",
        "checkpoints",
        "custom",
    }
)
_CUSTOM = re.compile(r"custom:.+")


def check_channels(channels: list[str]) -> list[str]:
    for channel in channels:
        if channel not in CHANNELS and not _CUSTOM.fullmatch(channel):
            raise ValueError(
                f"unknown channel '{channel[:64]}' (one of {sorted(CHANNELS)} or custom:<name>)"
            )
    return channels


class EventStreamRequest(BaseModel):
    """Body of `POST /threads/{thread_id}/stream/events` (ProtocolEventStreamRequest)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    channels: list[str] = Field(min_length=1)
    namespaces: list[list[str]] | None = None
    depth: int | None = Field(default=None, ge=0, le=2**31)
    since: int | None = Field(default=None, ge=0, lt=2**63)

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        return check_channels(value)


class ProtocolCommand(BaseModel):
    """A command envelope (ProtocolCommand): `id`, `method`, method-specific `params`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: int = Field(ge=0, lt=2**63)
    method: str = Field(max_length=128)
    params: dict[str, Any] = Field(default_factory=dict)
