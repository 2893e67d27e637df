"""JSON responses encoded with the broker's one encoder (orjson)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from broker import jsonable


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return jsonable.dumps(content)


def with_total(content: Any, total: int, offset: int, count: int) -> JSON:
    """A page of results with the pagination headers the SDK reads."""
    headers = {"X-Pagination-Total": str(total)}
    if offset + count < total:
        headers["X-Pagination-Next"] = str(offset + count)
    return JSON(content, headers=headers)
