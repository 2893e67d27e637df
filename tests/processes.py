"""Real `broker api` / `broker worker` subprocesses on loopback, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BROKER = [sys.executable, "-m", "broker"]
GRAPHS = Path(__file__).parent / "graphs" / "langgraph.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """One broker process whose output goes to a log file we can show on failure."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.popen = subprocess.Popen(
            [*BROKER, *args], env=env, stdout=self._file, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._file.close()

    def terminated(self, timeout: float) -> int:
        """SIGTERM, then its exit code; if it has not exited within `timeout`, an
        AssertionError with its output and every asyncio task's stack (broker/taskdump.py)."""
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(
                f"no exit {timeout:.0f}s after SIGTERM; its tasks:\n{self.output()}"
            ) from None


def start_api(env: dict[str, str], log_dir: Path, config: Path = GRAPHS) -> tuple[Process, str]:
    port = free_port()
    args = ["api", "--config", str(config), "--port", str(port)]
    process = Process(args, env, log_dir / f"api-{port}.log")
    url = f"http://127.0.0.1:{port}"
    _wait_ready(process, url)
    return process, url


def start_worker(env: dict[str, str], log_dir: Path, config: Path = GRAPHS) -> Process:
    index = len(list(log_dir.glob("worker-*.log")))
    return Process(["worker", "--config", str(config)], env, log_dir / f"worker-{index}.log")


def _wait_ready(process: Process, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"broker api exited early:\n{process.output()}")
        try:
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"broker api not ready after {timeout}s:\n{process.output()}")


@contextmanager
def broker_processes(
    env: dict[str, str], log_dir: Path, *, apis: int = 1, workers: int = 1, config: Path = GRAPHS
) -> Iterator[list[str]]:
    """API and worker processes; yields the API URLs; stops them all after."""
    processes: list[Process] = []
    try:
        urls = []
        for _ in range(apis):
            process, url = start_api(env, log_dir, config)
            processes.append(process)
            urls.append(url)
        processes.extend(start_worker(env, log_dir, config) for _ in range(workers))
        yield urls
    finally:
        for process in processes:
            process.stop()


def environ(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def start_dev(
    env: dict[str, str], log_dir: Path, data: Path, config: Path = GRAPHS
) -> tuple[Process, str]:
    """`broker dev` (API and worker in one process, on a SQLite file) on a free port."""
    port = free_port()
    args = ["dev", "--config", str(config), "--port", str(port), "--data", str(data)]
    process = Process(args, env, log_dir / f"dev-{port}.log")
    url = f"http://127.0.0.1:{port}"
    _wait_ready(process, url)
    return process, url
