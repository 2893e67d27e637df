"""`ask` interrupts with a question; resuming with `Command(resume=...)` answers it."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    question: str
    answer: str


def ask(state: State) -> State:
    answer = interrupt({"question": state["question"]})
    return {"answer": str(answer)}


def done(state: State) -> State:
    return {"answer": state["answer"] + "!"}


builder = StateGraph(State)
builder.add_node("ask", ask)
builder.add_node("done", done)
builder.add_edge(START, "ask")
builder.add_edge("ask", "done")
graph = builder.compile()
