"""The inspect-at-scale bench (bench/inspect_scale.py) at a tiny count: it fills its
scratch database through the checkpointer and SQL clones, every view answers in-process
and as a `broker inspect --json` subprocess, and no statement behind `thread` or
`checkpoint` scans the checkpoint tables."""

from __future__ import annotations

import pytest

from bench import inspect_scale
from tests.services import Services


async def test_the_bench_fills_times_and_explains_every_view(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await inspect_scale.bench(2000, per_thread=100, repeat=2)

    assert (result["threads"], result["per_thread"]) == (20, 100)
    assert result["sizes"]["checkpoints"]["rows"] == 2000
    assert result["sizes"]["runs"]["rows"] > result["threads"]  # plus pending and stuck ones
    assert set(result["timings"]) == {
        "runs",
        "runs --thread",
        "thread",
        "checkpoint",
        "checkpoint --step",
        "queue",
    }
    assert all(t["median_ms"] > 0 and t["cli_ms"] > 0 for t in result["timings"].values())
    assert result["seq_scans"] == []
    printed = capsys.readouterr().out
    assert "Index Scan using pk_checkpoints" in printed or "on pk_checkpoints" in printed
    assert "dropped" in printed
