"""`broker dev`: one process on SQLite that survives being killed, and its port choice."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from api.listen import listen
from tests.processes import free_port, start_dev


async def _progress(url: str, tid: str, done: int) -> None:
    client = get_client(url=url)
    for _ in range(400):
        state: dict[str, Any] = dict(await client.threads.get_state(tid))
        if state["values"].get("done", 0) >= done:
            await client.aclose()
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"thread {tid} never reached {done} ticks")


async def test_killed_mid_run_then_restarted_the_run_completes(
    broker_env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "dev.sqlite3"
    process, url = start_dev(broker_env, tmp_path, data)
    client = get_client(url=url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": 8, "delay": 0.2})
    await client.aclose()
    await _progress(url, tid, 2)
    process.stop(signal.SIGKILL)

    process, url = start_dev(broker_env, tmp_path, data)
    try:
        client = get_client(url=url)
        final: dict[str, Any] = dict(await client.runs.join(tid, run["run_id"]))
        assert final["done"] == 8
        again = await client.runs.get(tid, run["run_id"])
        assert (again["status"], (await client.threads.get(tid))["status"]) == ("success", "idle")
        history: list[Any] = await client.threads.get_history(tid, limit=100)
        sources = [h["metadata"]["source"] for h in history]
        assert sources.count("input") == 1  # resumed from its checkpoint, not restarted
        await client.aclose()
    finally:
        process.stop()
    assert "recovered" in process.output()


def test_default_port_taken_takes_the_next(capsys: pytest.CaptureFixture[str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    sock = listen("dev", "127.0.0.1", None, default=port)
    try:
        assert sock.getsockname()[1] > port
        assert (
            f"Port {port} is in use; using {sock.getsockname()[1]} instead."
            in capsys.readouterr().err
        )
    finally:
        sock.close()
        taken.close()


def test_explicit_port_taken_is_an_error() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    with pytest.raises(SystemExit, match="pass another --port"):
        listen("dev", "127.0.0.1", taken.getsockname()[1])
    taken.close()


def test_explicit_free_port_is_used() -> None:
    port = free_port()
    sock = listen("dev", "127.0.0.1", port)
    assert sock.getsockname()[1] == port
    sock.close()
