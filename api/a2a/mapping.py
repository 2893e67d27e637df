"""A2A's objects ↔ LangGraph's (a2a-sdk's v0.3 pydantic types, the JSON-RPC binding
LangGraph's spec describes): a message becomes the graph's input, a run its Task.

- text parts → one user message appended to the graph's `messages`; data parts are
  merged into the input; file parts are refused;
- a run's status → the task's state (success with interrupts pending: input-required);
- the last AI message of the values → the task's "Assistant Response" artifact;
  the values' messages → the task's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from a2a.compat.v0_3 import types as a2a

from api.a2a.errors import CONTENT_TYPE, RpcError
from api.agents import message_text
from broker import jsonable
from broker.models import Run, RunStatus

ARTIFACT_NAME = "Assistant Response"
_ROLES = {a2a.Role.user: "human", a2a.Role.agent: "ai"}
_STATES = {
    RunStatus.PENDING: a2a.TaskState.submitted,
    RunStatus.RUNNING: a2a.TaskState.working,
    RunStatus.SUCCESS: a2a.TaskState.completed,
    RunStatus.ERROR: a2a.TaskState.failed,
    RunStatus.TIMEOUT: a2a.TaskState.failed,
    RunStatus.INTERRUPTED: a2a.TaskState.canceled,
}


def graph_input(message: a2a.Message, accepts_messages: bool) -> dict[str, Any]:
    """The run's input: data parts merged, the text parts as one message."""
    data: dict[str, Any] = {}
    texts: list[str] = []
    for part in message.parts:
        inner = part.root
        if isinstance(inner, a2a.TextPart):
            texts.append(inner.text)
        elif isinstance(inner, a2a.DataPart):
            data.update(inner.data)
        else:
            raise RpcError(
                CONTENT_TYPE, "message.parts: file parts are not supported; send text or data"
            )
    if not texts:
        if not data:
            raise RpcError.params("message.parts: no text or data part")
        return data
    if not accepts_messages:
        raise RpcError.params(
            "message.parts: text parts need a 'messages' field in the assistant's input "
            "schema, and this assistant's has none; send a data part instead"
        )
    text = {"type": _ROLES[message.role], "content": "\n".join(texts), "id": message.message_id}
    earlier = data.get("messages", [])
    if not isinstance(earlier, list):
        raise RpcError.params("message.parts: a data part's 'messages' must be a list")
    return {**data, "messages": [*earlier, text]}


def state(run: Run, interrupted: bool) -> a2a.TaskState:
    if run.status is RunStatus.SUCCESS and interrupted:
        return a2a.TaskState.input_required
    return _STATES[run.status]


def task(
    run: Run,
    task_state: a2a.TaskState,
    values: Any,
    *,
    error: str | None = None,
    history_length: int | None = None,
    interrupts: dict[str, Any] | None = None,
) -> a2a.Task:
    """The run as a task; `values` (the thread's, if they are this run's) give its
    artifact and history; an input-required task's status message is what its
    interrupts ask (the thread's `interrupts`)."""
    status = a2a.TaskStatus(state=task_state, timestamp=_timestamp(run.updated_at))
    if error is not None:
        status.message = agent_message(run, [_text(error)])
    elif task_state is a2a.TaskState.input_required:
        asked = [i.get("value") for group in (interrupts or {}).values() for i in group]
        status.message = agent_message(run, [_part(value) for value in asked])
    answer = answer_of(values) if task_state is a2a.TaskState.completed else None
    return a2a.Task(
        id=str(run.run_id),
        context_id=str(run.thread_id),
        status=status,
        artifacts=None if answer is None else [artifact(run, answer)],
        history=history(run, values, history_length),
    )


def answer_of(values: Any) -> str | None:
    """The text of the values' last message, if an AI wrote it."""
    messages = values.get("messages") if isinstance(values, dict) else None
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("type") not in ("ai", "AIMessageChunk"):
        return None
    return message_text(last)


def artifact(run: Run, text: str) -> a2a.Artifact:
    return a2a.Artifact(
        artifact_id=artifact_id(run),
        name=ARTIFACT_NAME,
        parts=[a2a.Part(root=a2a.TextPart(text=text))],
    )


def artifact_id(run: Run) -> str:
    """One artifact per task: its streamed chunks and its final text share the id."""
    return str(uuid5(run.run_id, "artifact"))


def resume_value(message: a2a.Message) -> Any:
    """What resumes an interrupt: a data part's `resume` (parallel interrupts), else the
    text of the message, else its data."""
    data: dict[str, Any] = {}
    texts: list[str] = []
    for part in message.parts:
        inner = part.root
        if isinstance(inner, a2a.TextPart):
            texts.append(inner.text)
        elif isinstance(inner, a2a.DataPart):
            data.update(inner.data)
        else:
            raise RpcError(CONTENT_TYPE, "message.parts: file parts are not supported")
    if "resume" in data:
        return data["resume"]
    if texts:
        return "\n".join(texts)
    if not data:
        raise RpcError.params("message.parts: no text or data part to resume with")
    return data


def _text(text: str) -> a2a.Part:
    return a2a.Part(root=a2a.TextPart(text=text))


def _part(value: Any) -> a2a.Part:
    if isinstance(value, dict):
        return a2a.Part(root=a2a.DataPart(data=value))
    return _text(value if isinstance(value, str) else jsonable.dumps(value).decode())


def agent_message(run: Run, parts: list[a2a.Part]) -> a2a.Message:
    return a2a.Message(
        role=a2a.Role.agent,
        parts=parts,
        message_id=str(uuid5(run.run_id, "status")),
        context_id=str(run.thread_id),
        task_id=str(run.run_id),
    )


def history(run: Run, values: Any, length: int | None) -> list[a2a.Message] | None:
    messages = values.get("messages") if isinstance(values, dict) else None
    if not isinstance(messages, list):
        return None
    converted = [m for m in (_history_message(run, raw) for raw in messages) if m is not None]
    return converted[-length:] if length else converted if length is None else []


def _history_message(run: Run, raw: Any) -> a2a.Message | None:
    if not isinstance(raw, dict) or raw.get("type") not in ("human", "ai", "AIMessageChunk"):
        return None  # tool and system messages have no A2A role
    role = a2a.Role.user if raw["type"] == "human" else a2a.Role.agent
    return a2a.Message(
        role=role,
        parts=[a2a.Part(root=a2a.TextPart(text=message_text(raw)))],
        message_id=str(raw.get("id") or uuid5(run.thread_id, message_text(raw))),
        context_id=str(run.thread_id),
    )


def context_id(value: str | None) -> UUID | None:
    """contextId names a thread (a UUID); None starts a new one."""
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise RpcError.params("message.contextId: must be a thread id (a UUID)") from None


def _timestamp(moment: datetime) -> str:
    return moment.isoformat()
