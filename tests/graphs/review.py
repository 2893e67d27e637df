"""Human in the loop: `draft` writes, `review` asks a human (interrupt), `publish` finishes.

The human's answer (the resume value) is stored as `verdict`; `publish` marks the
draft published only if it was approved.
"""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    topic: str
    draft: str
    verdict: str
    published: bool


def draft(state: State) -> State:
    return {"draft": f"A post about {state['topic']}"}


def review(state: State) -> State:
    verdict = interrupt({"question": "Publish this draft?", "draft": state["draft"]})
    return {"verdict": str(verdict)}


def publish(state: State) -> State:
    return {"published": state.get("verdict") == "yes"}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_node("publish", publish)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", "publish")
graph = builder.compile()
