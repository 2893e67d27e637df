"""`python -m bench.run --quick --no-reference --no-langhost`: every workload runs and yields
numbers; and the cluster rows (ours on a Redis Cluster beside ours on one Redis) for one
workload.

The harness starts its own broker processes on its own database; it is given this
session's Postgres and Redis so that it finds them wherever the tests did.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.run import NAMES
from tests.services import Services

ROOT = Path(__file__).resolve().parents[2]
# ~35 s on a quiet box; 60-95 s seen with other test runs sharing its 2 cores.
BUDGET_SECONDS = 150.0
# Three servers started one after another and a cluster created: 40 s on a quiet box,
# over two minutes with other test runs on its 2 cores.
CLUSTER_BUDGET_SECONDS = 180.0


def _numbers(figures: dict[str, object]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in figures.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _bench(
    services: Services, tmp_path: Path, args: list[str], budget: float
) -> tuple[str, dict[str, Any]]:
    """`python -m bench.run *args` on this session's stores: its output and its results."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "DATABASE_URI": services.database_uri, "REDIS_URI": services.redis_uri}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *args, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=budget,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(out.read_text())


def test_quick_run_measures_every_workload(services: Services, tmp_path: Path) -> None:
    # The cluster phase has its own test below: both within one budget would not fit.
    args = ["--quick", "--no-reference", "--no-langhost", "--no-cluster"]
    stdout, results = _bench(services, tmp_path, args, BUDGET_SECONDS)

    assert set(results["workloads"]) == set(NAMES)
    for name, workload in results["workloads"].items():
        numbers = _numbers(workload["ours"])
        assert numbers, f"{name}: no figures"
        assert all(math.isfinite(v) and v >= 0 for v in numbers.values()), (name, numbers)
    assert results["reference"] == {"available": False, "reason": "skipped (--no-reference)"}
    assert results["langhost"] == {"available": False, "reason": "skipped (--no-langhost)"}
    for name in ("pubsub", "commit_1", "commit_20", "batch_insert"):
        assert results["ceilings"][name]["per_second"] > 0
    assert results["rows"], "the table is empty"
    assert "latency" in stdout and "REFERENCE MISSING" in stdout
    assert "vs langhost" not in stdout  # skipped: no column for it


def test_quick_run_prints_the_cluster_rows(services: Services, tmp_path: Path) -> None:
    args = ["--quick", "--no-reference", "--no-langhost", "--no-pooled", "--only", "latency"]
    stdout, results = _bench(services, tmp_path, args, CLUSTER_BUDGET_SECONDS)
    latency = results["workloads"]["latency"]
    for side in ("ours", "plain", "cluster"):
        assert _numbers(latency[side])["p50_ms"] > 0, side
    assert "cluster: runs.wait p50" in stdout and "(plain)" in stdout
