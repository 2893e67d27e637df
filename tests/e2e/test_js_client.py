"""The seed's JavaScript example, run by node with `@langchain/langgraph-sdk`, against the broker.

The SDK version is pinned in tests/js/package.json (and package-lock.json); the first run
installs it into tests/js/node_modules with `npm ci`, the only time the npm registry is
used. Without node and npm these tests fail, saying so: they never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SDK = "@langchain/langgraph-sdk"
REPLY = "The tool says: It's always sunny in sf."


def _say(pytestconfig: pytest.Config, line: str) -> None:
    """Progress the user sees even while pytest captures output (npm ci can be slow)."""
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line, file=sys.stderr, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(line, file=sys.stderr, flush=True)


def _installed_version() -> str | None:
    manifest = JS_DIR / "node_modules" / SDK / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


@pytest.fixture(scope="session")
def node(pytestconfig: pytest.Config) -> str:
    """The node executable, with the pinned SDK installed in tests/js/node_modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        pytest.fail(
            f"the JS client tests need Node.js: {missing} not found on PATH "
            "(install Node.js >= 18 with npm, e.g. apt-get install nodejs npm)",
            pytrace=False,
        )
    wanted = json.loads((JS_DIR / "package.json").read_text())["dependencies"][SDK]
    if _installed_version() != wanted:
        command = "ci" if (JS_DIR / "package-lock.json").exists() else "install"
        _say(pytestconfig, f"==> npm {command} in tests/js ({SDK}@{wanted})")
        result = subprocess.run(
            [npm, command, "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0 or _installed_version() != wanted:
            pytest.fail(
                f"`npm {command}` in {JS_DIR} failed (exit {result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
                pytrace=False,
            )
        _say(pytestconfig, f"==> npm {command} in tests/js: done")
    return node


def _run_example(node: str, server: str, stream_mode: str) -> list[tuple[str, Any]]:
    result = subprocess.run(
        [node, "stream.mjs", server, stream_mode],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"node stream.mjs failed:\n{result.stdout}\n{result.stderr}"
    parts = []
    for line in result.stdout.splitlines():
        event, _, data = line.partition("\t")
        parts.append((event, json.loads(data)))
    return parts


def test_js_example_streams_updates(node: str, server: str) -> None:
    parts = _run_example(node, server, "updates")
    assert [event for event, _ in parts] == ["metadata", "updates", "updates", "updates"]
    assert set(parts[0][1]) == {"run_id", "attempt"}
    updates = [data for event, data in parts[1:]]
    assert [next(iter(u)) for u in updates] == ["agent", "tools", "agent"]
    [call] = updates[0]["agent"]["messages"][0]["tool_calls"]
    assert (call["name"], call["args"]) == ("get_weather", {"city": "sf"})
    [tool] = updates[1]["tools"]["messages"]
    assert (tool["type"], tool["content"]) == ("tool", "It's always sunny in sf.")
    [reply] = updates[2]["agent"]["messages"]
    assert (reply["type"], reply["content"]) == ("ai", REPLY)


def test_js_example_streams_message_tokens(node: str, server: str) -> None:
    parts = _run_example(node, server, "messages-tuple")
    assert parts[0][0] == "metadata"
    assert {event for event, _ in parts[1:]} == {"messages"}
    pairs = [data for _, data in parts[1:]]
    assert all(len(pair) == 2 for pair in pairs)
    last_id = pairs[-1][0]["id"]
    tokens = [(chunk, meta) for chunk, meta in pairs if chunk["id"] == last_id]
    assert len(tokens) > 5  # word by word
    assert "".join(chunk["content"] for chunk, _ in tokens) == REPLY
    assert {(chunk["type"], meta["langgraph_node"]) for chunk, meta in tokens} == {
        ("AIMessageChunk", "agent")
    }
    tools = [(chunk, meta) for chunk, meta in pairs if chunk["type"] == "tool"]
    assert [(c["content"], m["langgraph_node"]) for c, m in tools] == [
        ("It's always sunny in sf.", "tools")
    ]
