"""A graph of `steps` supersteps, each sleeping `delay` seconds (from the input).

`make_graph` takes a RunnableConfig, as LangGraph's graph factories may.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


def _last(_: float, new: float) -> float:
    return new


class State(TypedDict, total=False):
    steps: int
    delay: float
    done: int
    started: Annotated[float, _last]
    finished: Annotated[float, _last]


async def tick(state: State) -> State:
    done = state.get("done", 0)
    update: State = {"started": state.get("started") or time.time()}
    await asyncio.sleep(state.get("delay", 0.05))
    return {**update, "done": done + 1, "finished": time.time()}


def route(state: State) -> str:
    return "tick" if state.get("done", 0) < state.get("steps", 3) else END


def make_graph(config: RunnableConfig) -> object:
    builder = StateGraph(State)
    builder.add_node("tick", tick)
    builder.add_edge(START, "tick")
    builder.add_conditional_edges("tick", route, ["tick", END])
    return builder.compile()
