"""CPU seconds used by a server's processes, read from /proc (Linux).

Rates on a shared 2-core box depend on what else runs, including the load generator; CPU
time per run does not, so it is the fairer measure of what a server costs per run.
A server's share is its own processes and their children, plus its stores: given the
server's databases and Redis ports, only the Postgres backends connected to those
databases and the redis-server processes on those ports (on a shared box other programs'
queries and test Redises would otherwise land on whichever server is measured;
`langgraph dev` has neither, so none counts), else every Postgres and Redis process. A
Redis cannot tell its clients apart, so others' commands on the same one still count. A backend that exits between two snapshots takes its CPU with it, so a
server that churns connections is undercounted, never overcounted; store processes are
compared pid by pid, so one that exits cannot make a share negative.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
STORES = (("postgres", "postgres"), ("redis", "redis-server"))  # (role, process name)


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """A process' name and the fields of /proc/PID/stat after it; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process; 0 if it is gone."""
    stat = _stat(pid)
    return 0.0 if stat is None else (int(stat[1][11]) + int(stat[1][12])) / TICKS


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, name) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(entry.name)) is not None:
            found.append((int(entry.name), int(stat[1][1]), stat[0]))
    return found


def tree(root: int, processes: list[tuple[int, int, str]]) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent, _ in processes:
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _title(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().split()
    except (OSError, UnicodeDecodeError):
        return []


def _serves(
    role: str, pid: int, databases: Collection[str] | None, ports: Collection[int] | None
) -> bool:
    """A store process that counts: any (none named), a Postgres backend of one of the
    databases (title `postgres: 15/main: USER DATABASE HOST(PORT) STATE`), or a Redis on
    one of the ports (title `redis-server HOST:PORT`)."""
    if role == "postgres":
        if databases is None:
            return True
        words = _title(pid)
        return len(words) > 3 and words[3] in databases
    if ports is None:
        return True
    words = _title(pid)
    return len(words) > 1 and words[1].rpartition(":")[2] in {str(port) for port in ports}


def snapshot(
    pids: dict[str, int],
    databases: Collection[str] | None = None,
    redis_ports: Collection[int] | None = None,
) -> dict[str, float]:
    """CPU seconds so far of each role's process tree, of us, and of each Postgres and
    Redis process as `role@pid` (only those of `databases` and `redis_ports`, if given)."""
    processes = _processes()
    taken = {role: sum(map(cpu_seconds, tree(pid, processes))) for role, pid in pids.items()}
    for role, name in STORES:
        taken[role] = 0.0  # the role is reported even when nothing of it ran
        for pid, _, comm in processes:
            if comm == name and _serves(role, pid, databases, redis_ports):
                taken[f"{role}@{pid}"] = cpu_seconds(pid)
    taken["client (SDK)"] = time.process_time()  # the workloads run in this process
    return taken


@dataclass(frozen=True)
class Usage:
    """CPU seconds each role used between two snapshots."""

    seconds: dict[str, float]

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float]) -> Usage:
        """Per role; store processes (`role@pid`) summed into their role, each from its
        own first reading (a new one from 0), those gone by `after` left out."""
        seconds: dict[str, float] = {}
        for key, value in after.items():
            role = key.partition("@")[0]
            seconds[role] = seconds.get(role, 0.0) + value - before.get(key, 0.0)
        return cls(seconds)

    @property
    def server(self) -> float:
        return sum(v for role, v in self.seconds.items() if role != "client (SDK)")

    @property
    def client(self) -> float:
        return self.seconds.get("client (SDK)", 0.0)

    def per_run_ms(self, runs: int) -> dict[str, float]:
        share = 1000.0 / max(runs, 1)
        figures = {f"{role}_cpu_ms_per_run": v * share for role, v in self.seconds.items()}
        figures = {k.replace(" (SDK)", "").replace("-", "_"): v for k, v in figures.items()}
        figures["server_cpu_ms_per_run"] = self.server * share
        # Postgres + Redis: the durable servers' (ours, langhost) stores, ~0 for langgraph dev.
        stores = sum(self.seconds.get(role, 0.0) for role, _ in STORES)
        figures["stores_cpu_ms_per_run"] = stores * share
        return figures
