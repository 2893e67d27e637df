"""Two trivial nodes in a row: what a run costs when the graph costs nothing."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    value: int
    path: str


def first(state: State) -> State:
    return {"value": state.get("value", 0) + 1, "path": "first"}


def second(state: State) -> State:
    return {"value": state.get("value", 0) * 2, "path": state.get("path", "") + ">second"}


builder = StateGraph(State)
builder.add_node("first", first)
builder.add_node("second", second)
builder.add_edge(START, "first")
builder.add_edge("first", "second")
graph = builder.compile()
