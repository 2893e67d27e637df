"""Remembers across threads through the broker's store: `remember` writes a memory
(a node taking `store: BaseStore`), `recall` reads them (`get_store()`) and the
runtime's store (`runtime.store`), under the namespace ("memories", user)."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore


class State(TypedDict, total=False):
    user: str
    remember: str | None
    memories: list[str]
    runtime_sees: int


async def remember(state: State, store: BaseStore) -> dict[str, Any]:
    text = state.get("remember")
    if text:
        await store.aput(("memories", state["user"]), text, {"text": text})
    return {}


async def recall(state: State, runtime: Runtime[Any]) -> dict[str, Any]:
    namespace = ("memories", state["user"])
    found = await get_store().asearch(namespace, limit=100)
    assert runtime.store is not None
    seen = await runtime.store.asearch(namespace, limit=100)
    return {"memories": sorted(item.value["text"] for item in found), "runtime_sees": len(seen)}


def remember_sync(state: State, store: BaseStore) -> dict[str, Any]:
    """A sync node (LangGraph runs it in a thread): the store's sync API."""
    if state.get("remember"):
        store.put(("memories", state["user"], "sync"), "last", {"text": state["remember"]})
    return {}


builder = StateGraph(State)
builder.add_node("remember", remember)
builder.add_node("remember_sync", remember_sync)
builder.add_node("recall", recall)
builder.add_edge(START, "remember")
builder.add_edge("remember", "remember_sync")
builder.add_edge("remember_sync", "recall")
builder.add_edge("recall", END)
graph = builder.compile()
