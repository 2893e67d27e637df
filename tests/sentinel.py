"""A Redis Sentinel set on loopback: 1 master, 1 replica, 3 sentinels, from `redis-server`.

Each process gets a free port, its own directory and log; the sentinels need a config
file they can rewrite. `failover()` asks a sentinel for `SENTINEL FAILOVER` and waits
until every sentinel names the new master and the old one replicates from it.
"""

from __future__ import annotations

from pathlib import Path

import redis

from tests.processes import free_port
from tests.redis_processes import RedisProcesses

SERVICE = "broker"


class SentinelSet(RedisProcesses):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def uri(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelSet:
        master, replica = self.data_ports
        self._server(master, [])
        self._server(replica, ["--replicaof", "127.0.0.1", str(master)])
        for port in self.sentinel_ports:
            config = self.directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            self._spawn(f"sentinel-{port}", [str(config), "--sentinel"])
        self._until(self._settled, "the sentinels to see the replica and each other")
        return self

    def master_port(self) -> int:
        with redis.Redis(port=self.sentinel_ports[0]) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def failover(self) -> int:
        """Promote the replica; returns the new master's port once everyone agrees."""
        old = self.master_port()
        with redis.Redis(port=self.sentinel_ports[0]) as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        new = next(p for p in self.data_ports if p != old)

        def agreed() -> bool:
            for port in self.sentinel_ports:
                with redis.Redis(port=port) as sentinel:
                    if int(sentinel.sentinel_get_master_addr_by_name(SERVICE)[1]) != new:
                        return False
            with redis.Redis(port=old) as demoted:
                info = demoted.info("replication")
            return bool(info["role"] == "slave" and info.get("master_link_status") == "up")

        self._until(agreed, f"the failover to {new}")
        return new

    def _server(self, port: int, extra: list[str]) -> None:
        flags = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        # As docs/production.md asks: a master without a replica refuses writes, so the
        # old master takes none in the failover's window (they would be lost).
        flags += ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"]
        self._spawn(f"redis-{port}", [*flags, "--dir", str(self.directory), *extra])

    def _settled(self) -> bool:
        for port in self.sentinel_ports:
            with redis.Redis(port=port) as sentinel:
                state = sentinel.sentinel_master(SERVICE)
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                return False
        return True
