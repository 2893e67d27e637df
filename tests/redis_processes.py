"""What every Redis test fixture made of `redis-server` processes shares: spawning each
with its log in the fixture's directory, waiting for a condition, the logs, stopping.

Subclasses (tests/cluster_redis.py, tests/sentinel.py) say what to start in `start()`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

READY_SECONDS = 30.0


def redis_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: apt-get install redis-server")
    return path


class RedisProcesses:
    def __init__(self, directory: Path) -> None:
        self.server = redis_binary("redis-server")
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> Self:
        raise NotImplementedError

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """`redis-server ARGS`, logging to `<name>.log` in the fixture's directory."""
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen([self.server, *args], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def _until(
        self, condition: Callable[[], bool], what: str, seconds: float = READY_SECONDS
    ) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass  # not listening yet, or mid-failover
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {seconds:.0f}s for {what}\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
            for path in sorted(self.directory.glob("*.log"))
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
