"""Three supersteps that each add to a counter and a log: easy to check step by step."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict):
    count: int
    log: Annotated[list[str], operator.add]


def one(state: State) -> dict[str, object]:
    return {"count": state["count"] + 1, "log": ["one"]}


def two(state: State) -> dict[str, object]:
    return {"count": state["count"] + 10, "log": ["two"]}


def three(state: State) -> dict[str, object]:
    return {"count": state["count"] + 100, "log": ["three"]}


builder = StateGraph(State)
builder.add_node("one", one)
builder.add_node("two", two)
builder.add_node("three", three)
builder.add_edge(START, "one")
builder.add_edge("one", "two")
builder.add_edge("two", "three")
graph = builder.compile()
