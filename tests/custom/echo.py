"""A graph whose one node reports the request headers its run's configurable holds."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    seen: dict[str, Any]


def report(state: State, config: RunnableConfig) -> State:
    configurable = config.get("configurable", {})
    headers = {k: v for k, v in configurable.items() if k.startswith("x-") or k == "user-agent"}
    return {"seen": headers}


builder: StateGraph[State, None, State, State] = StateGraph(State)
builder.add_node("report", report)
builder.add_edge(START, "report")
graph = builder.compile()
