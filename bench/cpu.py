"""CPU seconds used by a server's processes, read from /proc (Linux).

Rates on a shared 2-core box depend on what else runs, including the load generator; CPU
time per run does not, so it is the fairer measure of what a server costs per run.
A server's share is its own processes and their children, plus every Postgres and Redis
process on the machine (langgraph dev uses neither, so its share of them is ~0; ours and
langhost use both). Machine-wide, so Postgres work of other programs on a shared box lands
on whichever server is being measured.
"""

from __future__ import annotations

import os
import time
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


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each role's process tree, of Postgres and Redis, and of us."""
    processes = _processes()
    taken = {role: sum(map(cpu_seconds, tree(pid, processes))) for role, pid in pids.items()}
    for role, name in STORES:
        taken[role] = sum(cpu_seconds(pid) for pid, _, comm in processes if comm == name)
    taken["client (SDK)"] = time.process_time()  # the workloads run in this process
    return taken


@dataclass(frozen=True)
class Usage:
    """CPU seconds each role used between two snapshots."""

    seconds: dict[str, float]

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float]) -> Usage:
        return cls({role: after[role] - before.get(role, 0.0) for role in after})

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
