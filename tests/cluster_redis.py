"""A Redis Cluster on loopback: 3 masters (and, if asked, a replica each), from
`redis-server` and `redis-cli`.

Each node gets a free port (and the port + 10000 for the cluster bus, which must be free
too), its own directory, node file and log; `redis-cli --cluster create` assigns the
16384 slots (and a replica to each master), and `start()` returns once every node
reports the cluster `ok` and every replica is in sync. `kill_master_of(key)` kills -9
the master owning a key's slot and waits until its replica has taken over.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import redis

from tests.processes import free_port
from tests.redis_processes import READY_SECONDS, RedisProcesses, redis_binary

MASTERS = 3
BUS_OFFSET = 10000  # Redis puts a node's cluster bus on its port + 10000
# How long a node may be unreachable before the others count it as failed (and its
# replica is promoted): Redis' default is 15 s, too long for a test to sit through.
FAILOVER_NODE_TIMEOUT_MS = 1000


class RedisCluster(RedisProcesses):
    def __init__(self, directory: Path, *, replicas: int = 0) -> None:
        super().__init__(directory)
        self.cli = redis_binary("redis-cli")
        self.replicas = replicas
        self.ports = [_port_with_free_bus() for _ in range(MASTERS * (1 + replicas))]
        self.by_port: dict[int, subprocess.Popen[bytes]] = {}

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
            if self.replicas:
                flags += ["--cluster-node-timeout", str(FAILOVER_NODE_TIMEOUT_MS)]
            self.by_port[port] = self._spawn(f"redis-{port}", flags)
        self._until(self._all_answer, "the nodes to listen")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        replicas = ["--cluster-replicas", str(self.replicas)]
        subprocess.run(
            [self.cli, "--cluster", "create", *nodes, *replicas, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=READY_SECONDS,
        )
        self._until(self._settled, "every node to report cluster_state:ok, replicas in sync")
        return self

    @property
    def live_ports(self) -> list[int]:
        return [port for port in self.ports if self.by_port[port].poll() is None]

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot now (as a fresh client reads it)."""
        with redis.RedisCluster(host="127.0.0.1", port=self.live_ports[0]) as client:
            node = client.get_node_from_key(key)
        return int(node.port)

    def kill_master_of(self, key: str) -> int:
        """kill -9 the master of `key`'s slot; returns the port of the replica that took
        over, once every surviving node reports the cluster `ok` again."""
        old = self.master_of(key)
        victim = self.by_port[old]
        victim.kill()
        victim.wait()
        self._until(lambda: self._all_ok() and self.master_of(key) != old, f"a replica of {old}")
        return self.master_of(key)

    def _all_answer(self) -> bool:
        for port in self.live_ports:
            with redis.Redis(port=port) as node:
                node.ping()
        return True

    def _all_ok(self) -> bool:
        for port in self.live_ports:
            with redis.Redis(port=port) as node:
                if node.cluster("info")["cluster_state"] != "ok":
                    return False
        return True

    def _settled(self) -> bool:
        if not self._all_ok():
            return False
        for port in self.live_ports:
            with redis.Redis(port=port) as node:
                info = node.info("replication")
            if info["role"] == "slave" and info.get("master_link_status") != "up":
                return False
        return True


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
