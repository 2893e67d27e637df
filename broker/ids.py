"""Time-ordered ids (uuid7), as LangGraph Platform uses for runs and threads."""

from __future__ import annotations

import os
import time
from uuid import UUID


def uuid7() -> UUID:
    """RFC 9562 version 7: 48-bit unix-ms timestamp, then random bits."""
    value = (time.time_ns() // 1_000_000) << 80
    value |= int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return UUID(int=value)
