"""A tool-calling chat agent: `agent` asks the model, `tools` runs what it called."""

from __future__ import annotations

from typing import Literal

from fake_model import FakeStreamingChat
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode


@tool
def get_weather(city: str) -> str:
    """The weather in a city (always sunny, for the example)."""
    return f"It's always sunny in {city}."


model = FakeStreamingChat().bind_tools([get_weather])


async def agent(state: MessagesState) -> dict[str, list[object]]:
    return {"messages": [await model.ainvoke(state["messages"])]}


def route(state: MessagesState) -> Literal["tools", "__end__"]:
    last = state["messages"][-1]
    return "tools" if getattr(last, "tool_calls", None) else END


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([get_weather]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", route)
builder.add_edge("tools", "agent")

graph = builder.compile()
