"""`broker dev`: one process on SQLite that survives being killed, and its port choice."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from api.listen import listen
from tests.processes import BROKER, GRAPHS, Process, free_port, start_dev


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


def test_a_second_dev_on_the_same_file_refuses(broker_env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "dev.sqlite3"
    first, url = start_dev(broker_env, tmp_path, data)
    try:
        second = subprocess.run(
            [
                *BROKER,
                "dev",
                "--config",
                str(GRAPHS),
                "--data",
                str(data),
                "--port",
                str(free_port()),
            ],
            env=broker_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert second.stderr.strip().splitlines()[-1] == (
            f"broker dev: {data} is in use by broker dev (pid {first.popen.pid}, {url}); "
            "stop it, or pass another --data for a second server"
        )
        assert first.popen.poll() is None
    finally:
        first.stop()


def _until_output(process: Process, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.output():
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.05)


async def test_ctrl_c_waits_saying_how_long_and_a_second_hands_runs_back(
    broker_env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "dev.sqlite3"
    env = {**broker_env, "BROKER_SHUTDOWN_GRACE": "120"}
    process, url = start_dev(env, tmp_path, data)
    client = get_client(url=url)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    run = await client.runs.create(tid, "slow", input={"steps": 40, "delay": 0.2})
    await client.aclose()
    await _progress(url, tid, 1)

    process.popen.send_signal(signal.SIGINT)
    _until_output(process, "worker")  # the drain has begun
    _until_output(process, "running runs: " + run["run_id"])
    assert "Ctrl-C again to hand them back and exit now" in process.output()
    assert "waiting up to 12" in process.output()  # ~120 s left, said with the run's id
    started = time.monotonic()
    process.popen.send_signal(signal.SIGINT)
    assert process.popen.wait(timeout=20) == 0
    assert time.monotonic() - started < 15  # not the 120 s grace
    process.stop()
    assert "handing 1 runs back" in process.output()
    assert "broker dev: stopped" in process.output()

    again, url = start_dev(env, tmp_path, data)  # the handed-back run resumes here
    try:
        client = get_client(url=url)
        final: dict[str, Any] = dict(await client.runs.join(tid, run["run_id"]))
        assert final["done"] == 40
        await client.aclose()
    finally:
        again.stop()
