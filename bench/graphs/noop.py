"""One node that does nothing: what a background run costs the broker itself."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    value: int


async def noop(state: State) -> State:
    return {"value": state.get("value", 0)}


builder = StateGraph(State)
builder.add_node("noop", noop)
builder.add_edge(START, "noop")
graph = builder.compile()
