"""A2A at /a2a/{assistant_id} and the agent card, on both topologies: a context is a
thread, a task is a run; the answers validate against a2a-sdk's models (v0.3)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from a2a.compat.v0_3 import types as a2a
from langgraph_sdk.client import LangGraphClient


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


def call(method: str, params: Any, request_id: Any = "1") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def message(*parts: dict[str, Any], context_id: str | None = None) -> dict[str, Any]:
    sent: dict[str, Any] = {"role": "user", "parts": list(parts), "messageId": uuid4().hex}
    if context_id is not None:
        sent["contextId"] = context_id
    return {"message": sent}


def text(words: str) -> dict[str, Any]:
    return {"kind": "text", "text": words}


async def rpc(
    http: httpx.AsyncClient, assistant: str, body: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    response = await http.post(f"/a2a/{assistant}", json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def answer_of(task: a2a.Task) -> str:
    assert task.artifacts is not None
    part = task.artifacts[0].parts[0].root
    assert isinstance(part, a2a.TextPart)
    return part.text


async def test_the_agent_card_validates(http: httpx.AsyncClient, server: str) -> None:
    response = await http.get("/.well-known/agent-card.json", params={"assistant_id": "agent"})
    card = a2a.AgentCard.model_validate(response.json())
    assert card.name == "agent" and card.capabilities.streaming is True
    assert card.url.startswith(f"{server}/a2a/") and card.skills
    missing = await http.get("/.well-known/agent-card.json", params={"assistant_id": str(uuid4())})
    assert missing.status_code == 404


async def test_message_send_answers_and_the_context_is_a_thread(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    sent = message(text("hello A2A"))
    sent["message"]["metadata"] = {"source": "a2a-test"}
    first = await rpc(http, "agent", call("message/send", sent))
    task = a2a.SendMessageSuccessResponse.model_validate(first).result
    assert isinstance(task, a2a.Task)
    assert task.status.state is a2a.TaskState.completed
    assert answer_of(task) == "You said: hello A2A"

    second = await rpc(
        http, "agent", call("message/send", message(text("again"), context_id=task.context_id))
    )
    follow = a2a.Task.model_validate(second["result"])
    assert follow.context_id == task.context_id and follow.id != task.id
    assert answer_of(follow) == "You said: again"
    assert follow.history is not None and len(follow.history) == 4  # both turns
    state: Any = await client.threads.get_state(task.context_id)
    assert [m["type"] for m in state["values"]["messages"]] == ["human", "ai", "human", "ai"]
    run: Any = await client.runs.get(task.context_id, task.id)
    assert run["status"] == "success" and run["metadata"]["source"] == "a2a-test"


async def test_message_stream_streams_the_answer(http: httpx.AsyncClient) -> None:
    body = call("message/stream", message(text("stream this please")), request_id=7)
    events: list[dict[str, Any]] = []
    async with http.stream("POST", "/a2a/agent", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    assert all(e["id"] == 7 for e in events)
    results = [a2a.SendStreamingMessageSuccessResponse.model_validate(e).result for e in events]
    assert isinstance(results[0], a2a.Task)
    assert results[0].status.state is a2a.TaskState.submitted
    chunks = [r for r in results if isinstance(r, a2a.TaskArtifactUpdateEvent)]
    tokens = [c.artifact.parts[0].root for c in chunks if not c.last_chunk]
    assert len(tokens) > 1  # token by token
    assert "".join(t.text for t in tokens if isinstance(t, a2a.TextPart)) == (
        "You said: stream this please"
    )
    assert chunks[-1].last_chunk and not chunks[-1].append
    last = results[-1]
    assert isinstance(last, a2a.TaskStatusUpdateEvent)
    assert last.final and last.status.state is a2a.TaskState.completed


async def test_tasks_get_and_cancel(http: httpx.AsyncClient) -> None:
    started = await rpc(
        http,
        "slow",
        call(
            "message/send",
            {
                **message({"kind": "data", "data": {"steps": 400, "delay": 0.05}}),
                "configuration": {"blocking": False},
            },
        ),
    )
    task = a2a.Task.model_validate(started["result"])
    assert task.status.state is a2a.TaskState.submitted
    ids = {"id": task.id, "contextId": task.context_id}
    got = await rpc(http, "slow", call("tasks/get", ids))
    assert a2a.Task.model_validate(got["result"]).id == task.id
    cancelled = await rpc(http, "slow", call("tasks/cancel", ids))
    assert a2a.Task.model_validate(cancelled["result"]).status.state is a2a.TaskState.canceled
    again = await rpc(http, "slow", call("tasks/cancel", ids), 409)
    assert again["error"]["code"] == -32002  # TaskNotCancelable: it has ended
    after = await rpc(http, "slow", call("tasks/get", ids))
    assert after["result"]["status"]["state"] == "canceled"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, -32700),
        (b'["a", "batch"]', 400, -32600),
        (b'{"jsonrpc": "1.0", "id": "1", "method": "message/send"}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": "1", "method": "tasks/resubscribe"}', 400, -32601),
        (b'{"jsonrpc": "2.0", "id": "1", "method": "message/send", "params": {}}', 400, -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}', 404, -32001),
    ],
    ids=["parse", "batch", "version", "method", "params", "task"],
)
async def test_bad_requests_get_json_rpc_errors(
    http: httpx.AsyncClient, body: bytes, status: int, code: int
) -> None:
    for content_type in ("application/json", "text/plain"):  # parsed by us, or at the edge
        response = await http.post(
            "/a2a/agent", content=body, headers={"Content-Type": content_type}
        )
        assert response.status_code == status
        assert response.json()["error"]["code"] == code


async def test_refusals_name_what_is_wrong(http: httpx.AsyncClient) -> None:
    unknown_task = {"id": str(uuid4()), "contextId": str(uuid4())}
    unknown = await rpc(http, "agent", call("tasks/get", unknown_task), 404)
    assert unknown["error"]["code"] == -32001
    no_messages = await rpc(http, "slow", call("message/send", message(text("hi"))), 400)
    assert no_messages["error"]["code"] == -32602
    assert "messages" in no_messages["error"]["message"]
    bad_context = await rpc(
        http, "agent", call("message/send", message(text("hi"), context_id="thread-123")), 400
    )
    assert bad_context["error"]["code"] == -32602
    odd = message(text("hi"), {"kind": "data", "data": {"messages": "not a list"}})
    assert (await rpc(http, "agent", call("message/send", odd), 400))["error"]["code"] == -32602
    files = message({"kind": "file", "file": {"uri": "https://example.test/a.pdf"}})
    assert (await rpc(http, "agent", call("message/send", files), 400))["error"]["code"] == -32005
    missing = await http.post(f"/a2a/{uuid4()}", json=call("message/send", message(text("x"))))
    assert missing.status_code == 404


async def test_an_interrupt_is_input_required_and_a_reply_naming_the_task_resumes_it(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    asked = await rpc(
        http,
        "interrupting",
        call("message/send", message({"kind": "data", "data": {"question": "Your name?"}})),
    )
    task = a2a.Task.model_validate(asked["result"])
    assert task.status.state is a2a.TaskState.input_required
    assert task.status.message is not None
    question = task.status.message.parts[0].root
    assert isinstance(question, a2a.DataPart) and question.data == {"question": "Your name?"}

    reply = message(text("Ada"), context_id=task.context_id)
    reply["message"]["taskId"] = task.id
    resumed = a2a.Task.model_validate(
        (await rpc(http, "interrupting", call("message/send", reply)))["result"]
    )
    assert resumed.status.state is a2a.TaskState.completed
    assert resumed.context_id == task.context_id and resumed.id != task.id
    state: Any = await client.threads.get_state(task.context_id)
    assert state["values"]["answer"] == "Ada!"

    again = await rpc(http, "interrupting", call("message/send", reply), 400)
    assert again["error"]["code"] == -32004  # that task waits for nothing now
    reply["message"]["taskId"] = str(uuid4())
    unknown = await rpc(http, "interrupting", call("message/send", reply), 404)
    assert unknown["error"]["code"] == -32001


async def test_a_task_sent_to_one_api_process_is_read_and_cancelled_on_another(
    production_server: str, second_server: str
) -> None:
    async with (
        httpx.AsyncClient(base_url=production_server, timeout=30) as one,
        httpx.AsyncClient(base_url=second_server, timeout=30) as two,
    ):
        slow = message({"kind": "data", "data": {"steps": 400, "delay": 0.05}})
        started = await rpc(
            one, "slow", call("message/send", {**slow, "configuration": {"blocking": False}})
        )
        ids = {"id": started["result"]["id"], "contextId": started["result"]["contextId"]}
        assert (await rpc(two, "slow", call("tasks/get", ids)))["result"]["id"] == ids["id"]
        cancelled = await rpc(two, "slow", call("tasks/cancel", ids))
        assert cancelled["result"]["status"]["state"] == "canceled"
        after = await rpc(one, "slow", call("tasks/get", ids))
        assert after["result"]["status"]["state"] == "canceled"
