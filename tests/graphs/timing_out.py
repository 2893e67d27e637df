"""A graph whose node times out calling something upstream: the graph's failure, not the
broker's. The run must end `error` at once, never be handed back and retried."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict):
    topic: str


async def call_upstream(state: State) -> State:
    raise TimeoutError("upstream took too long")


builder = StateGraph(State)
builder.add_node("call_upstream", call_upstream)
builder.add_edge(START, "call_upstream")
graph = builder.compile()
