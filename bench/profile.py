"""Where our server's time goes under one workload: py-spy on the API and both workers.

    .venv/bin/python -m bench.profile --only latency [--seconds 30] [--rate 200]

Starts our server (1 API + 2 workers, fresh database), warms it up, then drives the
workload for `--seconds` while `py-spy record --gil` samples every broker process (only
the thread holding the GIL: a share is a share of Python CPU time, not of waiting in
epoll or on a lock). Also reads the CPU seconds each process, Postgres and Redis used
meanwhile (/proc), per run: that is the budget a run costs on this 2-core machine.

Writes each process' collapsed stacks (py-spy's raw format: speedscope and flamegraph.pl
read it) under bench/results/profiles/<workload>-<stamp>/, and prints the top frames by
inclusive and by self time, plus the self time by package. py-spy is in the `bench` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from bench import cpu
from bench.servers import our_server, say, stores_of
from bench.workloads import FULL, WORKLOADS, Sizes, latency, throughput

PROFILES = Path(__file__).resolve().parent / "results" / "profiles"


# -- collapsed stacks -------------------------------------------------------------------


@dataclass
class Stacks:
    samples: int
    inclusive: Counter[str]
    self_: Counter[str]
    packages: Counter[str]  # self time by package
    packages_inclusive: Counter[str]  # samples with any frame of the package


OURS = ("broker", "api", "worker")
_ENTRY_POINTS = ("broker/__main__.py", "broker/cli.py:main", "api/main.py:serve", "worker/main.py:")


def _frame_name(frame: str) -> str:
    """'function (path/to/file.py:123)' → 'path/to/file.py:function' (no line number)."""
    function, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{_short(path)}:{function}"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(frame: str) -> str:
    path = frame.split(":", 1)[0]
    top = path.split("/", 1)[0]
    return top.removesuffix(".py")


def read_stacks(path: Path) -> Stacks:
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    packages_inclusive: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        samples += count
        for name in set(frames):
            inclusive[name] += count
        self_[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for package in {_package(f) for f in frames}:
            packages_inclusive[package] += count
    return Stacks(samples, inclusive, self_, packages, packages_inclusive)


def _ours(stacks: Stacks) -> Counter[str]:
    """Inclusive time of our own functions (broker/, api/, worker/), entry points left out."""
    return Counter(
        {
            name: count
            for name, count in stacks.inclusive.items()
            if name.split("/", 1)[0] in OURS and not name.startswith(_ENTRY_POINTS)
        }
    )


def _top(counter: Counter[str], total: int, count: int) -> list[str]:
    return [f"  {n / total:6.1%}  {name}" for name, n in counter.most_common(count)]


# -- driving ----------------------------------------------------------------------------


def _sizes(seconds: float) -> Sizes:
    return replace(
        FULL,
        latency_runs=1_000_000,
        latency_warmup=0,
        latency_seconds=seconds,
        throughput_warmup=0.0,
        throughput_seconds=seconds,
    )


async def _drive(workload: str, url: str, seconds: float) -> dict[str, Any]:
    """Latency and throughput run for `seconds`; any other workload is repeated as long."""
    if workload == "latency":
        return await latency(url, _sizes(seconds))
    if workload == "throughput":
        return await throughput(url, _sizes(seconds))
    sizes = replace(FULL, stream_repeats=1, checkpoint_rounds=1)
    deadline = time.perf_counter() + seconds
    rounds = 0
    figures: dict[str, Any] = {}
    while time.perf_counter() < deadline:
        figures = await WORKLOADS[workload](url, sizes)
        rounds += 1
    return {**figures, "rounds": rounds, "runs": rounds * int(figures.get("runs", 1))}


def profile(workload: str, seconds: float, rate: int, out: Path) -> None:
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        sys.exit("py-spy is not installed: pip install -e '.[bench]'")
    out.mkdir(parents=True, exist_ok=True)
    with our_server() as server:
        say(f"warming up ({workload}, 3 s)")
        asyncio.run(_drive(workload, server.url, 3.0))
        recorders = []
        for role, pid in server.pids.items():
            command = [
                *(py_spy, "record", "--pid", str(pid), "--rate", str(rate)),
                *("--duration", str(int(seconds)), "--format", "raw", "--function", "--gil"),
                *("--output", str(out / f"{role}.txt")),
            ]
            recorders.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            )
        time.sleep(0.5)  # let py-spy attach
        say(f"driving {workload} for {seconds:.0f} s under py-spy ({rate} Hz)")
        databases, ports = stores_of(server)
        before = cpu.snapshot(server.pids, databases, ports)
        started = time.perf_counter()
        figures = asyncio.run(_drive(workload, server.url, seconds))
        wall = time.perf_counter() - started
        after = cpu.snapshot(server.pids, databases, ports)
        for recorder in recorders:
            _, errors = recorder.communicate(timeout=seconds + 60)
            if recorder.returncode:
                say(f"py-spy failed: {errors.decode(errors='replace').strip()}")
    runs = figures.get("runs") or 1
    print()
    print(f"{workload}: {figures}")
    print(f"CPU per run over {wall:.1f} s ({runs} runs; the machine has {os.cpu_count()} cores):")
    for name, used in cpu.Usage.between(before, after).seconds.items():
        print(f"  {name:<13} {used * 1000 / runs:7.2f} ms/run  ({used / wall:5.0%} of a core)")
    for role in server.pids:
        raw = out / f"{role}.txt"
        if not raw.exists():
            continue
        stacks = read_stacks(raw)
        if not stacks.samples:
            continue
        print(f"\n== {role}: {stacks.samples} samples holding the GIL")
        print(" by package, inclusive (samples with any frame of it):")
        print("\n".join(_top(stacks.packages_inclusive, stacks.samples, 14)))
        print(" by package, self time:")
        print("\n".join(_top(stacks.packages, stacks.samples, 12)))
        print(" our functions, inclusive (time in the function and below):")
        print("\n".join(_top(_ours(stacks), stacks.samples, 30)))
        print(" every function, inclusive:")
        print("\n".join(_top(stacks.inclusive, stacks.samples, 30)))
        print(" self (time in the frame itself):")
        print("\n".join(_top(stacks.self_, stacks.samples, 25)))
    say(f"collapsed stacks in {out} (open them in speedscope, or flamegraph.pl → SVG)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(WORKLOADS), default="latency")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, help="directory for the profiles")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = args.out or PROFILES / f"{args.only}-{stamp}"
    profile(args.only, args.seconds, args.rate, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
