"""bench/throughput.py keeps working: a tiny run of both of its phases."""

from __future__ import annotations

import subprocess
import sys


def test_throughput_bench_quick_run() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "background runs (no-op graph, 1 api + 2 workers):" in result.stdout
    assert "create → running p50" in result.stdout
    assert "recovery after kill -9" in result.stdout or "no kill hit" in result.stdout
