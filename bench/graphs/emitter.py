"""One node that sends `count` custom payloads `{"index": i, "pad": "x" * pad}`, in order.

With `pace`, the node gives the event loop a turn after every `pace` payloads, as a node
relaying a model's tokens would; with 0 it writes them all in one burst.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    count: int
    pad: int
    pace: int
    emitted: int


async def emit(state: State) -> State:
    write = get_stream_writer()
    count = state.get("count", 3)
    pad = "x" * state.get("pad", 0)
    pace = state.get("pace", 0)
    for index in range(count):
        write({"index": index, "pad": pad})
        if pace and index % pace == pace - 1:
            await asyncio.sleep(0)
    return {"emitted": count}


builder = StateGraph(State)
builder.add_node("emit", emit)
builder.add_edge(START, "emit")
graph = builder.compile()
