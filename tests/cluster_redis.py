"""A Redis Cluster on loopback: 3 masters, no replicas, from `redis-server` and `redis-cli`.

Each node gets a free port (and the port + 10000 for the cluster bus, which must be free
too), its own directory, node file and log; `redis-cli --cluster create` assigns the
16384 slots, and `start()` returns once every node reports the cluster `ok`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

from tests.processes import free_port

MASTERS = 3
READY_SECONDS = 30.0
BUS_OFFSET = 10000  # Redis puts a node's cluster bus on its port + 10000


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: apt-get install redis-server")
    return path


class RedisCluster:
    def __init__(self, directory: Path) -> None:
        self.server = _binary("redis-server")
        self.cli = _binary("redis-cli")
        self.directory = directory
        self.ports = [_port_with_free_bus() for _ in range(MASTERS)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def uri(self) -> str:
        return "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> RedisCluster:
        for port in self.ports:
            node = self.directory / str(port)
            node.mkdir(parents=True, exist_ok=True)
            flags = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(node)]
            flags += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            flags += ["--save", "", "--appendonly", "no"]
            log = (self.directory / f"redis-{port}.log").open("wb")
            self.processes.append(
                subprocess.Popen([self.server, *flags], stdout=log, stderr=subprocess.STDOUT)
            )
            log.close()
        self._until(self._all_answer, "the nodes to listen")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=READY_SECONDS,
        )
        self._until(self._all_ok, "every node to report cluster_state:ok")
        return self

    def _all_answer(self) -> bool:
        for port in self.ports:
            with redis.Redis(port=port) as node:
                node.ping()
        return True

    def _all_ok(self) -> bool:
        for port in self.ports:
            with redis.Redis(port=port) as node:
                if node.cluster("info")["cluster_state"] != "ok":
                    return False
        return True

    def _until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {READY_SECONDS:.0f}s for {what}\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
            for path in sorted(self.directory.glob("*.log"))
        )

    def __enter__(self) -> RedisCluster:
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


def _port_with_free_bus() -> int:
    """A free port whose cluster-bus port (+10000) is free too, and below 65536."""
    while True:
        port = free_port()
        if port + BUS_OFFSET < 65536 and _free(port + BUS_OFFSET):
            return port


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
