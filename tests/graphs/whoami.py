"""Echoes who made the run: `configurable.langgraph_auth_user_id` (custom auth)."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    user_id: str | None
    permissions: list[str]


def whoami(state: State, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    return {
        "user_id": configurable.get("langgraph_auth_user_id"),
        "permissions": list(configurable.get("langgraph_auth_permissions") or []),
    }


builder = StateGraph(State)
builder.add_node("whoami", whoami)
builder.add_edge(START, "whoami")
builder.add_edge("whoami", END)
graph = builder.compile()
