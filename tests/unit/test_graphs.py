"""Loading langgraph.json: compiled graphs, factories, env, dependencies, and failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from broker.errors import GraphLoadError
from broker.graphs import load_config

GRAPH = """
from typing import TypedDict
from langgraph.graph import StateGraph, START
from helper import suffix

class S(TypedDict):
    x: str

def node(state: S) -> dict:
    return {"x": state["x"] + suffix()}

builder = StateGraph(S)
builder.add_node("node", node)
builder.add_edge(START, "node")
compiled = builder.compile()

def no_args():
    return compiled

def with_config(config):
    assert "configurable" in config
    return compiled

async def async_factory(config):
    return compiled
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "graph.py").write_text(GRAPH)
    (tmp_path / "helper.py").write_text("def suffix():\n    return '!'\n")
    (tmp_path / ".env").write_text("BROKER_TEST_FROM_DOTENV=yes\n")
    graphs = {
        name: f"./graph.py:{name}"
        for name in ("compiled", "builder", "no_args", "with_config", "async_factory")
    }
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": graphs, "env": ".env", "dependencies": ["."]}))
    return config


@pytest.mark.parametrize("name", ["compiled", "builder", "no_args", "with_config", "async_factory"])
async def test_every_graph_form_loads_and_runs(tmp_path: Path, name: str) -> None:
    registry = load_config(_project(tmp_path))
    graph = await registry.get(name, {"configurable": {"thread_id": "t"}})
    assert await graph.ainvoke({"x": "a"}) == {"x": "a!"}
    assert os.environ["BROKER_TEST_FROM_DOTENV"] == "yes"


def test_bad_source_form(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"g": "no-colon"}}))
    with pytest.raises(GraphLoadError, match="not of the form"):
        load_config(config)


def test_no_graphs(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text("{}")
    with pytest.raises(GraphLoadError, match="'graphs' must map"):
        load_config(config)
