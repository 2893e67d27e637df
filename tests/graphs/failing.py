"""A graph whose second node raises: the run must end `error`, the thread too."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict):
    value: str


def fine(state: State) -> dict[str, str]:
    return {"value": state["value"] + "!"}


def broken(state: State) -> dict[str, str]:
    raise ValueError(f"cannot handle {state['value']!r}")


builder = StateGraph(State)
builder.add_node("fine", fine)
builder.add_node("broken", broken)
builder.add_edge(START, "fine")
builder.add_edge("fine", "broken")
graph = builder.compile()
