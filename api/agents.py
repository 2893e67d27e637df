"""What MCP and A2A share: an assistant run for a protocol that answers once it ends,
and the answer read out of the values it leaves.

The run is an ordinary one: authorized as the caller's `threads.create_run` (their
user in its config, as every run), submitted through the service (queued, executed
by a worker, durable, cancellable from any API process), its end awaited on the bus.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from api.auth.authorize import Authorizer, authorize_run
from api.sse import await_output, poller
from broker.models import RunRequest
from broker.runtime import Runtime
from broker.service import Submission


async def submit(
    runtime: Runtime, authorize: Authorizer, thread_id: UUID | None, request: RunRequest
) -> Submission:
    """The run, subscribed to: its events (or its end) cannot be missed."""
    request, filter = await authorize_run(authorize, thread_id, request)
    return await runtime.service.submit(thread_id, request, subscribe=True, filter=filter)


async def output_of(runtime: Runtime, submission: Submission) -> dict[str, Any]:
    """The run's final output (its values, or `{"__error__": …}` if it failed)."""
    assert submission.subscription is not None
    heartbeat = runtime.settings.sse_heartbeat_seconds
    poll = poller(runtime.service, submission.run)
    return await await_output(submission.subscription, heartbeat, poll)


def last_message(values: Any) -> dict[str, Any] | None:
    """The last of the values' `messages`, as a message dict (LangChain's serialized form)."""
    messages = values.get("messages") if isinstance(values, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        return messages[-1]
    return None


def message_text(message: dict[str, Any]) -> str:
    """A message's text: its string content, or its text blocks joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block if isinstance(block, str) else str(block.get("text", ""))
            for block in content
            if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")
        )
    return ""


def failure(output: dict[str, Any]) -> str | None:
    """What a failed run reported (its `__error__` output), or None if it did not fail."""
    error = output.get("__error__")
    if error is None:
        return None
    if isinstance(error, dict):
        return f"{error.get('error', 'Error')}: {error.get('message', '')}"
    return str(error)
