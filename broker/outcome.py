"""How a run's end is told, built in one place: the error payload, the `__error__`
output, the `error` SSE frame and the end marker on the run channel.

The same error payload lands on the stream, in the thread's `error` and (as
`{"__error__": …}`) in the output `wait` returns, so a client sees one shape everywhere.
"""

from __future__ import annotations

from typing import Any

from broker import jsonable
from broker.events import end_message, sse_frame
from broker.models import RunOutcome, RunStatus


def error_payload(error: str, message: str) -> dict[str, Any]:
    """`{"error": <kind>, "message": <text>}`, as LangGraph Platform reports a failed run."""
    return {"error": error, "message": message}


def exception_payload(exc: BaseException) -> dict[str, Any]:
    return error_payload(type(exc).__name__, str(exc))


def error_output(error: dict[str, Any]) -> dict[str, Any]:
    """The output of a failed run (what `wait` answers)."""
    return {"__error__": error}


def failed(error: dict[str, Any]) -> RunOutcome:
    return RunOutcome(RunStatus.ERROR, output=error_output(error), error=error)


def error_frame(error: dict[str, Any]) -> bytes:
    return sse_frame("error", jsonable.dumps(error))


def end_marker(status: RunStatus, output: dict[str, Any] | None = None) -> bytes:
    """The run channel's last message, published once the database holds the end."""
    return end_message({"status": status.value, "output": output or {}})


def failure_end(error: dict[str, Any]) -> bytes:
    return end_marker(RunStatus.ERROR, error_output(error))
