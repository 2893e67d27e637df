"""A parent graph whose `research` node is itself a two-node graph.

Stream it with `stream_subgraphs=True` to see events named `updates|research:<task id>`.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]


def search(state: State) -> dict[str, list[str]]:
    return {"notes": [f"found three papers on {state['topic']}"]}


def summarize(state: State) -> dict[str, list[str]]:
    return {"notes": [f"summary of {len(state['notes'])} notes"]}


research_builder = StateGraph(State)
research_builder.add_node("search", search)
research_builder.add_node("summarize", summarize)
research_builder.add_edge(START, "search")
research_builder.add_edge("search", "summarize")
research = research_builder.compile()


def write(state: State) -> dict[str, list[str]]:
    return {"notes": [f"report on {state['topic']} from {len(state['notes'])} notes"]}


builder = StateGraph(State)
builder.add_node("research", research)
builder.add_node("write", write)
builder.add_edge(START, "research")
builder.add_edge("research", "write")
graph = builder.compile()
