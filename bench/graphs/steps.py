"""One node looping `steps` supersteps, each overwriting a `size`-byte state field.

With a checkpointer every superstep writes a checkpoint: 10 steps of 1 KB measure the
checkpoint path; thousands build a long history quickly (raise `recursion_limit`).
"""

from __future__ import annotations

from typing import Literal, TypedDict

from langgraph.graph import START, StateGraph


class State(TypedDict, total=False):
    steps: int
    size: int
    step: int
    blob: str


def step(state: State) -> State:
    done = state.get("step", 0) + 1
    letter = "abcdefghijklmnopqrstuvwxyz"[done % 26]
    return {"step": done, "blob": letter * state.get("size", 1024)}


def again(state: State) -> Literal["step", "__end__"]:
    if state.get("step", 0) < state.get("steps", 10):
        return "step"
    return "__end__"  # END


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_conditional_edges("step", again)
graph = builder.compile()
