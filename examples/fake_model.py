"""A deterministic chat model that streams its answer token by token: no API key, no network.

It answers from the conversation itself: asked about the weather it calls the
`get_weather` tool; given a tool result it reports it; otherwise it echoes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field


class FakeStreamingChat(BaseChatModel):
    """Replies are a pure function of the messages, streamed one word at a time."""

    tool_names: list[str] = Field(default_factory=list)
    delay: float = 0.0  # seconds before each token when streaming async (0: as fast as it can)

    @property
    def _llm_type(self) -> str:
        return "fake-streaming-chat"

    def bind_tools(self, tools: Sequence[BaseTool], **_: Any) -> Runnable[Any, BaseMessage]:
        return FakeStreamingChat(tool_names=[t.name for t in tools], delay=self.delay)

    def reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"The tool says: {last.content}")
        text = str(last.content)
        if "weather" in text.lower() and "get_weather" in self.tool_names:
            call = {"name": "get_weather", "args": {"city": text.split()[-1]}, "id": "call_1"}
            return AIMessage(content="", tool_calls=[call])
        return AIMessage(content=f"You said: {text}")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in _chunks(self.reply(messages)):
            if run_manager:
                run_manager.on_llm_new_token(
                    str(chunk.content), chunk=ChatGenerationChunk(message=chunk)
                )
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in _chunks(self.reply(messages)):
            if self.delay:
                await asyncio.sleep(self.delay)
            if run_manager:
                await run_manager.on_llm_new_token(
                    str(chunk.content), chunk=ChatGenerationChunk(message=chunk)
                )
            yield ChatGenerationChunk(message=chunk)


def _chunks(message: AIMessage) -> Iterator[AIMessageChunk]:
    words = str(message.content).split(" ") if message.content else []
    for i, word in enumerate(words):
        yield AIMessageChunk(content=word if i == 0 else " " + word, id=message.id)
    if message.tool_calls:
        yield AIMessageChunk(
            content="",
            tool_call_chunks=[
                {"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": i}
                for i, c in enumerate(message.tool_calls)
            ],
        )


def _json(value: Any) -> str:
    return json.dumps(value)
