"""A slow graph for background runs: `steps` ticks, each `delay` seconds long.

Start it with `client.runs.create(...)`, walk away, and join it later with
`client.runs.join_stream(...)` or `client.runs.join(...)`.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    steps: int
    delay: float
    done: int


async def tick(state: State) -> State:
    await asyncio.sleep(state.get("delay", 1.0))
    return {"done": state.get("done", 0) + 1}


def more(state: State) -> str:
    return "tick" if state.get("done", 0) < state.get("steps", 10) else END


builder = StateGraph(State)
builder.add_node("tick", tick)
builder.add_edge(START, "tick")
builder.add_conditional_edges("tick", more, ["tick", END])
graph = builder.compile()
