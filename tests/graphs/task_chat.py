"""The functional API: an entrypoint whose `@task` asks the fake chat model (tokens from a
task must stream like tokens from a node)."""

from __future__ import annotations

from typing import Any

from fake_model import FakeStreamingChat  # type: ignore[import-not-found]  # examples/, on the graph path
from langgraph.func import entrypoint, task

model = FakeStreamingChat()


@task
async def ask(question: str) -> str:
    reply = await model.ainvoke(question)
    return str(reply.content)


@entrypoint()
async def graph(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"answer": await ask(inputs["question"])}
