"""A node that streams its own progress with `get_stream_writer()` (stream_mode="custom")."""

from __future__ import annotations

from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    items: int
    processed: int


def process(state: State) -> State:
    write = get_stream_writer()
    total = state.get("items", 5)
    for done in range(1, total + 1):
        write({"progress": done, "of": total})
    return {"processed": total}


builder = StateGraph(State)
builder.add_node("process", process)
builder.add_edge(START, "process")
graph = builder.compile()
