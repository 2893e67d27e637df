"""Graph factories are called as LangGraph documents: with a RunnableConfig, a
ServerRuntime (a parameter named `runtime`), both, or nothing; sync or async."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from broker import users
from broker.errors import GraphLoadError
from broker.graphs import GraphRegistry, load_config
from broker.users import User

FACTORIES = """
from typing import Any
from typing_extensions import TypedDict
from langgraph.graph import StateGraph, START
from langgraph_sdk.runtime import ServerRuntime

calls: list[Any] = []

class S(TypedDict):
    x: str

def node(state: S) -> dict:
    return {"x": state["x"]}

builder = StateGraph(S)
builder.add_node("node", node)
builder.add_edge(START, "node")
compiled = builder.compile()

def nothing():
    calls.append(())
    return compiled

def config_only(config):
    calls.append((config,))
    return compiled

def runtime_only(runtime):
    calls.append((runtime,))
    return compiled

def both(config, runtime):
    calls.append((config, runtime))
    return compiled

async def both_async(c, rt: ServerRuntime):
    calls.append((c, rt))
    return compiled

def keyword_runtime(config, *, runtime, debug=False):
    calls.append((config, runtime, debug))
    return compiled

def not_a_graph(config):
    return 42
"""

NAMES = (
    "nothing",
    "config_only",
    "runtime_only",
    "both",
    "both_async",
    "keyword_runtime",
    "not_a_graph",
)


@pytest.fixture
def registry(tmp_path: Path) -> GraphRegistry:
    """The factories of one fresh module (its `calls` read by `_calls`)."""
    (tmp_path / "factories.py").write_text(FACTORIES)
    graphs = {name: f"./factories.py:{name}" for name in NAMES}
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": graphs}))
    return load_config(config)


def _calls(tmp_path: Path) -> list[Any]:
    path = str(tmp_path / "factories.py")
    module = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == path)
    calls: list[Any] = module.calls
    return calls


CONFIG: Any = {"configurable": {"k": "v"}}


async def test_each_signature_gets_what_it_asks_for(
    registry: GraphRegistry, tmp_path: Path
) -> None:
    for name in ("nothing", "config_only", "runtime_only", "both", "both_async"):
        await registry.get(name, CONFIG, context={"tone": "warm"})
    calls = _calls(tmp_path)
    assert calls[0] == ()
    assert calls[1] == (CONFIG,)
    (runtime,) = calls[2]
    assert runtime.access_context == "threads.create_run"
    assert runtime.execution_runtime is runtime
    assert (runtime.context, runtime.user, runtime.store) == ({"tone": "warm"}, None, None)
    assert calls[3][0] == CONFIG and calls[3][1].access_context == "threads.create_run"
    assert calls[4][0] == CONFIG and calls[4][1].context == {"tone": "warm"}


async def test_reads_get_the_read_runtime(registry: GraphRegistry, tmp_path: Path) -> None:
    for access in ("assistants.read", "threads.read", "threads.update"):
        await registry.get("keyword_runtime", CONFIG, access=access)
        config, runtime, debug = _calls(tmp_path)[-1]
        assert (config, debug) == (CONFIG, False)  # an optional parameter keeps its default
        assert runtime.access_context == access
        assert runtime.execution_runtime is None
        assert not hasattr(runtime, "context")


async def test_a_factory_returning_no_graph_is_named(registry: GraphRegistry) -> None:
    with pytest.raises(GraphLoadError, match=r"not_a_graph.*gave int"):
        await registry.get("not_a_graph", CONFIG)


async def test_a_run_by_a_user_gives_the_factory_that_user(
    registry: GraphRegistry, tmp_path: Path
) -> None:
    user = {"identity": "alice", "permissions": ["p"], "team": "x"}
    config = {"configurable": users.configurable(User(user))}
    for access in ("threads.create_run", "threads.read"):
        await registry.get("runtime_only", config, access=access)  # type: ignore[arg-type]
        (runtime,) = _calls(tmp_path)[-1]
        assert (runtime.user.identity, runtime.user.permissions) == ("alice", ["p"])
        assert runtime.user["team"] == "x"


async def test_factories_get_the_attached_store(registry: GraphRegistry, tmp_path: Path) -> None:
    store = InMemoryStore()
    registry.attach_store(store)
    for access in ("threads.create_run", "threads.read"):
        await registry.get("runtime_only", CONFIG, access=access)
        (runtime,) = _calls(tmp_path)[-1]
        assert runtime.store is store
