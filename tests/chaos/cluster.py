"""A set of broker processes that a chaos test can kill, freeze, stop and replace."""

from __future__ import annotations

import random
import signal
import socket
import time
from pathlib import Path
from types import TracebackType

from tests.processes import GRAPHS, Process, start_api, start_worker


class Cluster:
    def __init__(self, env: dict[str, str], log_dir: Path, config: Path = GRAPHS) -> None:
        self.env = env
        self.log_dir = log_dir
        self.config = config
        self.apis: list[tuple[Process, str]] = []
        self.workers: list[Process] = []
        self.retired: list[Process] = []

    def start(self, *, apis: int, workers: int) -> Cluster:
        self.apis = [start_api(self.env, self.log_dir, self.config) for _ in range(apis)]
        self.workers = [start_worker(self.env, self.log_dir, self.config) for _ in range(workers)]
        return self

    def wait_for_workers(self, timeout: float = 60.0) -> None:
        """Until every worker is claiming (its start-up line is in its log)."""
        deadline = time.monotonic() + timeout
        while not all("concurrent runs" in w.output() for w in self.workers):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {timeout}s\n{self.logs()}")
            time.sleep(0.1)

    @property
    def urls(self) -> list[str]:
        return [url for _, url in self.apis]

    def add_worker(self) -> Process:
        worker = start_worker(self.env, self.log_dir, self.config)
        self.workers.append(worker)
        return worker

    def kill_random_worker(self) -> Process:
        """kill -9 one worker and start a fresh one in its place."""
        victim = random.choice(self.workers)
        victim.stop(signal.SIGKILL)
        self.workers.remove(victim)
        self.retired.append(victim)
        self.add_worker()
        return victim

    def worker_by_id(self, worker_id: str) -> Process:
        pid = int(worker_id.rsplit(":", 1)[1])
        return next(w for w in self.workers if w.popen.pid == pid)

    @staticmethod
    def worker_id(process: Process) -> str:
        return f"{socket.gethostname()}:{process.popen.pid}"

    def logs(self, tail: int | None = 3000) -> str:
        """Every process' log (its last `tail` characters; None: all of it)."""
        every = [p for p, _ in self.apis] + self.workers + self.retired
        return "\n".join(f"--- {p.log.name}\n{p.output()[-(tail or 0) :]}" for p in every)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for process, _ in self.apis:
            process.stop()
        for worker in self.workers:
            worker.stop(signal.SIGKILL if kind else signal.SIGTERM)
