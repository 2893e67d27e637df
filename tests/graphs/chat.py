"""A chat node streaming the fake model's answer word by word, then a node that adds a
complete (non-streamed) message and calls a helper tagged `langsmith:hidden` (which the
`events` mode must leave out)."""

from __future__ import annotations

from fake_model import FakeStreamingChat  # type: ignore[import-not-found]  # examples/, on the graph path
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, MessagesState, StateGraph

CLOSING = "That is all."
CLOSING_ID = "closing-remark"

model = FakeStreamingChat()


def _closing(_: object) -> AIMessage:
    return AIMessage(content=CLOSING, id=CLOSING_ID)


hidden_helper = RunnableLambda(_closing, name="hidden_helper").with_config(
    tags=["langsmith:hidden"]
)


async def chat(state: MessagesState) -> dict[str, list[object]]:
    return {"messages": [await model.ainvoke(state["messages"])]}


async def close(state: MessagesState) -> dict[str, list[object]]:
    return {"messages": [await hidden_helper.ainvoke(state)]}


builder = StateGraph(MessagesState)
builder.add_node("chat", chat)
builder.add_node("close", close)
builder.add_edge(START, "chat")
builder.add_edge("chat", "close")
graph = builder.compile()
