"""A graph that reports what its run was configured with (its assistant's config and
context under the run's), and `make_graph`, a factory taking (config, runtime).

Its state is a `typing_extensions.TypedDict` and its context a dataclass, so that every
JSON schema of it renders (pydantic refuses `typing.TypedDict` before Python 3.12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import ServerRuntime
from typing_extensions import TypedDict


@dataclass
class Context:
    tone: str = "plain"
    model: str = "none"


class State(TypedDict, total=False):
    question: str
    seen: dict[str, Any]


def report(state: State, runtime: Runtime[Context]) -> State:
    configurable = get_config().get("configurable", {})
    context = runtime.context or Context()  # a run without context gets none
    seen = {
        "greeting": configurable.get("greeting"),
        "assistant_id": configurable.get("assistant_id"),
        "graph_id": configurable.get("graph_id"),
        "thread_id": configurable.get("thread_id"),
        "run_id": configurable.get("run_id"),
        "tone": context.tone,
        "model": context.model,
    }
    return {"seen": seen}


def _builder() -> StateGraph[State, Context, State, State]:
    builder = StateGraph(State, context_schema=Context)
    builder.add_node("report", report)
    builder.add_edge(START, "report")
    return builder


graph = _builder().compile()


def make_graph(config: RunnableConfig, runtime: ServerRuntime[Any]) -> Any:
    """Built per call: its one node reports how the factory was called."""
    execution = runtime.execution_runtime
    called_with = {
        "access_context": runtime.access_context,
        "context": execution.context if execution is not None else None,
        "user": runtime.user,
        "store": isinstance(runtime.store, BaseStore),  # the broker hands every graph its store
        "greeting": config.get("configurable", {}).get("greeting"),
    }

    def called(state: State) -> State:
        return {"seen": called_with}

    builder: StateGraph[State, Context, State, State] = StateGraph(State, context_schema=Context)
    builder.add_node("called", called)
    builder.add_edge(START, "called")
    return builder.compile()
