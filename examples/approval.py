"""A chat that types slowly and asks before some answers (the chat page's second graph).

It echoes like `agent` does, a word every `DELAY` seconds, so a person (or a browser
test) can reload the page or press stop mid-reply. A message that mentions "approve"
first asks, with `interrupt()`, whether to answer: the reply is only written once the
run is resumed with `Command(resume="yes")`; any other answer declines.
"""

from __future__ import annotations

from fake_model import FakeStreamingChat
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import interrupt

DELAY = 0.1
model = FakeStreamingChat(delay=DELAY)


async def reply(state: MessagesState) -> dict[str, list[object]]:
    asked = str(state["messages"][-1].content)
    if "approve" in asked.lower():
        answer = interrupt({"question": f"Answer {asked!r}?", "options": ["yes", "no"]})
        if str(answer).strip().lower() != "yes":
            return {"messages": [AIMessage(content=f"Declined (you answered {answer!r}).")]}
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("reply", reply)
builder.add_edge(START, "reply")
graph = builder.compile()
