"""What a graph looks like from outside: its drawing, its JSON schemas, its subgraphs.

A schema that cannot be rendered (pydantic refuses `typing.TypedDict` before Python
3.12, for one) is null, as the contract says ("missing if unable to generate"): one bad
schema never fails the request.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from pydantic import BaseModel, TypeAdapter

log = logging.getLogger(__name__)

Schema = dict[str, Any] | None


async def drawing(
    graph: Pregel[Any, Any], config: dict[str, Any], xray: int | bool
) -> dict[str, Any]:
    """The graph's nodes and edges as LangGraph draws them (`get_graph(...).to_json()`)."""
    drawn = await graph.aget_graph(cast(RunnableConfig, config), xray=xray)
    return drawn.to_json()


def schemas(graph: Any, config: dict[str, Any]) -> dict[str, Schema]:
    """input, output, state, config and context schemas (GraphSchema without graph_id)."""
    return {
        "input_schema": _render(
            graph, "input", lambda: graph.get_input_jsonschema(cast(RunnableConfig, config))
        ),
        "output_schema": _render(
            graph, "output", lambda: graph.get_output_jsonschema(cast(RunnableConfig, config))
        ),
        "state_schema": _render(graph, "state", lambda: _state_schema(graph)),
        "config_schema": _render(graph, "config", lambda: _config_schema(graph)),
        "context_schema": _render(graph, "context", graph.get_context_jsonschema),
    }


def input_fields(graph: Any, config: dict[str, Any]) -> set[str]:
    """The input's top-level fields: a StateGraph's input channels (cheap: no JSON schema
    is rendered), else the properties of the input schema (none if it cannot be)."""
    builder = getattr(graph, "builder", None)
    channels = getattr(builder, "schemas", {}).get(getattr(builder, "input_schema", None))
    if isinstance(channels, dict):
        return set(channels)
    schema = _render(
        graph, "input", lambda: graph.get_input_jsonschema(cast(RunnableConfig, config))
    )
    return set((schema or {}).get("properties") or {})


async def subgraphs(
    graph: Pregel[Any, Any], config: dict[str, Any], namespace: str | None, recurse: bool
) -> dict[str, dict[str, Schema]]:
    """Namespace → schemas of each subgraph (under `namespace` only, if given)."""
    found: dict[str, dict[str, Schema]] = {}
    async for name, subgraph in graph.aget_subgraphs(namespace=namespace, recurse=recurse):
        found[name] = schemas(subgraph, config)
    return found


def _render(graph: Any, which: str, make: Callable[[], Schema]) -> Schema:
    try:
        return make()
    except Exception as exc:  # any graph's schema may fail: that schema is left out
        log.info("graph %s: no %s schema (%s: %s)", graph.name, which, type(exc).__name__, exc)
        return None


def _state_schema(graph: Pregel[Any, Any]) -> Schema:
    """The JSON schema of a StateGraph's state type; the output's for any other graph."""
    builder = getattr(graph, "builder", None)
    state = getattr(builder, "state_schema", None)
    if state is None:
        return graph.get_output_jsonschema()
    if isinstance(state, type) and issubclass(state, BaseModel):
        return state.model_json_schema()
    rendered: dict[str, Any] = TypeAdapter(state).json_schema()
    return rendered


def _config_schema(graph: Pregel[Any, Any]) -> Schema:
    # Deprecated by LangGraph in favour of context, yet still part of the contract.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        rendered: dict[str, Any] = graph.get_config_jsonschema()
    return rendered
