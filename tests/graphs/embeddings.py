"""A deterministic fake embedding: each word (lowercased) adds 1 to one of DIMS
dimensions, chosen by its CRC-32. Texts sharing words are close; no network."""

from __future__ import annotations

import re
import zlib

DIMS = 64


def vector(text: str) -> list[float]:
    out = [0.0] * DIMS
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        out[zlib.crc32(word.encode()) % DIMS] += 1.0
    return out


def embed(texts: list[str]) -> list[list[float]]:
    return [vector(text) for text in texts]


async def aembed(texts: list[str]) -> list[list[float]]:
    return embed(texts)
