"""A parent graph whose middle node is a two-node subgraph (`first` writes custom data,
`second` asks the fake chat model): namespaces, subgraph events and their filtering."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from fake_model import FakeStreamingChat  # type: ignore[import-not-found]  # examples/, on the graph path
from langchain_core.messages import HumanMessage
from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph

model = FakeStreamingChat()


class Inner(TypedDict, total=False):
    trail: Annotated[list[str], operator.add]
    said: str


class State(Inner, total=False):
    steps: Annotated[list[str], operator.add]


def first(state: Inner) -> Inner:
    get_stream_writer()({"from": "first"})
    return {"trail": ["first"]}


async def second(state: Inner) -> Inner:
    reply = await model.ainvoke([HumanMessage("inside the subgraph")])
    return {"trail": ["second"], "said": str(reply.content)}


def prepare(state: State) -> State:
    return {"steps": ["prepare"]}


def finish(state: State) -> State:
    return {"steps": ["finish"]}


inner = StateGraph(Inner)
inner.add_node("first", first)
inner.add_node("second", second)
inner.add_edge(START, "first")
inner.add_edge("first", "second")

builder = StateGraph(State)
builder.add_node("prepare", prepare)
builder.add_node("inner", inner.compile())
builder.add_node("finish", finish)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "inner")
builder.add_edge("inner", "finish")
graph = builder.compile()
