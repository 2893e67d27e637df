"""`broker inspect` as an operator runs it, against the store of each topology."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.e2e.conftest import Server
from tests.processes import BROKER

INPUT: dict[str, Any] = {"count": 0, "log": []}


def _inspect(
    backend: Server, env: dict[str, str], *args: str, json_out: bool = True
) -> subprocess.CompletedProcess[str]:
    where = ["--data", str(backend.data)] if backend.data else []
    flags = ["--json"] if json_out else []
    return subprocess.run(
        [*BROKER, "inspect", *args, *where, *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _view(backend: Server, env: dict[str, str], *args: str) -> Any:
    result = _inspect(backend, env, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
async def finished_thread(client: LangGraphClient) -> str:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "counter", input=INPUT)
    return str(thread["thread_id"])


async def test_runs_of_a_thread(
    finished_thread: str, backend: Server, server_env: dict[str, str]
) -> None:
    found = _view(backend, server_env, "runs", "--thread", finished_thread)["runs"]
    assert [(r["status"], r["attempt"], r["graph"]) for r in found] == [("success", 1, "counter")]
    by_status = _view(backend, server_env, "runs", "--status", "success", "--limit", "500")
    assert found[0]["run_id"] in {r["run_id"] for r in by_status["runs"]}


async def test_thread_timeline_by_step_and_node(
    finished_thread: str, backend: Server, server_env: dict[str, str]
) -> None:
    view = _view(backend, server_env, "thread", finished_thread)
    assert view["thread"]["status"] == "idle"
    steps = [(c["step"], c["source"], c["nodes"]) for c in view["checkpoints"]]
    assert steps == [
        (-1, "input", []),
        (0, "loop", ["__start__"]),
        (1, "loop", ["one"]),
        (2, "loop", ["two"]),
        (3, "loop", ["three"]),
    ]
    table = _inspect(backend, server_env, "thread", finished_thread, json_out=False)
    assert "CHECKPOINT_ID" in table.stdout and "three" in table.stdout


async def test_checkpoint_values_and_diff(
    finished_thread: str, backend: Server, server_env: dict[str, str]
) -> None:
    view = _view(backend, server_env, "checkpoint", finished_thread, "--step", "2")
    assert view["checkpoint"]["values"] == {"count": 11, "log": ["one", "two"]}
    assert view["diff"]["changed"] == {
        "count": {"old": 1, "new": 11},
        "log": {"old": ["one"], "new": ["one", "two"]},
    }
    latest = _view(backend, server_env, "checkpoint", finished_thread)
    assert latest["checkpoint"]["step"] == 3


async def test_queue_shows_a_waiting_run(
    client: LangGraphClient, backend: Server, server_env: dict[str, str]
) -> None:
    thread = await client.threads.create()
    later = await client.runs.create(thread["thread_id"], "counter", input=INPUT, after_seconds=600)
    try:
        view = _view(backend, server_env, "queue", "--limit", "1000")
        mine = [r for r in view["runs"] if r["run_id"] == later["run_id"]]
        assert mine and mine[0]["status"] == "pending" and not mine[0]["stuck"]
        assert view["pending"] >= 1
    finally:
        await client.runs.cancel(thread["thread_id"], later["run_id"])


def test_a_missing_thread_is_one_line(backend: Server, server_env: dict[str, str]) -> None:
    missing = "00000000-0000-0000-0000-000000000001"
    result = _inspect(backend, server_env, "thread", missing)
    assert result.returncode == 1
    assert result.stderr.strip() == f"broker inspect: Thread '{missing}' not found."
