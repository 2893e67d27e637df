"""A2A's errors are JSON-RPC errors: a code and a message in the response envelope,
with an HTTP status as LangGraph's spec gives them (400: the request is wrong) and as
our REST routes answer a missing or ended run (404, 409)."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED = -32004
CONTENT_TYPE = -32005


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    @classmethod
    def params(cls, message: str) -> RpcError:
        return cls(INVALID_PARAMS, message)

    @property
    def status(self) -> int:
        return {TASK_NOT_FOUND: 404, TASK_NOT_CANCELABLE: 409}.get(self.code, 400)

    def envelope(self, request_id: Any) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {"code": self.code, "message": self.message},
        }
