"""A chat node whose fake model streams exactly `tokens` chunks ("t0", " t1", ...).

The model is a plain `BaseChatModel`: LangGraph's `messages` stream mode sees its
tokens through the callbacks, as it would a real provider's. No network, no key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import START, MessagesState, StateGraph


class FakeTokens(BaseChatModel):
    """Answers with `tokens` words, streamed one chunk per word."""

    tokens: int = 3

    @property
    def _llm_type(self) -> str:
        return "bench-fake-tokens"

    def _words(self) -> Iterator[str]:
        for index in range(self.tokens):
            yield f"t{index}" if index == 0 else f" t{index}"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("".join(self._words())))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for word in self._words():
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
            await asyncio.sleep(0)  # a provider's tokens arrive one by one


class State(MessagesState, total=False):
    tokens: int


async def chat(state: State) -> dict[str, Any]:
    model = FakeTokens(tokens=state.get("tokens", 3))
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(State)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
graph = builder.compile()
