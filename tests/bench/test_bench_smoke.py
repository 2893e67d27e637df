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


def test_quick_run_measures_every_workload(services: Services, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "DATABASE_URI": services.database_uri, "REDIS_URI": services.redis_uri}
    # The cluster phase has its own test below: both within one budget would not fit.
    args = ["--quick", "--no-reference", "--no-langhost", "--no-cluster", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUDGET_SECONDS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())

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
    assert "latency" in done.stdout and "REFERENCE MISSING" in done.stdout
    assert "vs langhost" not in done.stdout  # skipped: no column for it


def test_quick_run_prints_the_cluster_rows(services: Services, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "DATABASE_URI": services.database_uri, "REDIS_URI": services.redis_uri}
    args = ["--quick", "--no-reference", "--no-langhost", "--no-pooled", "--only", "latency"]
    args += ["--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLUSTER_BUDGET_SECONDS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    latency = json.loads(out.read_text())["workloads"]["latency"]
    for side in ("ours", "plain", "cluster"):
        assert _numbers(latency[side])["p50_ms"] > 0, side
    assert "cluster: runs.wait p50" in done.stdout and "(plain)" in done.stdout
