"""The table's verdicts are issue 19's targets: costs against `langgraph dev`, latency,
and tokens against LangGraph's own in-process rate."""

from __future__ import annotations

from typing import Any

from bench import report


def _results(ours_cpu: float, ref_cpu: float, p50: float, tokens: float) -> dict[str, Any]:
    return {
        "ceilings": {"langgraph_tokens": {"per_second": 10_000.0}},
        "workloads": {
            "latency": {"ours": {"p50_ms": p50}, "reference": {"p50_ms": 1000.0}},
            "throughput": {
                "ours": {"server_cpu_ms_per_run": ours_cpu},
                "reference": {"server_cpu_ms_per_run": ref_cpu},
            },
            "streaming": {"ours": {"tokens_per_second": tokens}, "reference": {}},
        },
    }


def _verdicts(results: dict[str, Any]) -> dict[str, bool | None]:
    return {row["metric"]: row["pass"] for row in report.rows(results) if row["target"]}


def test_targets_met() -> None:
    verdicts = _verdicts(_results(ours_cpu=3.0, ref_cpu=7.0, p50=4.0, tokens=9_500.0))
    assert verdicts["server CPU per run (all processes)"] is True
    assert verdicts["runs.wait p50 (stateless, 2 nodes)"] is True
    assert verdicts["tokens vs LangGraph in-process"] is True


def test_targets_missed() -> None:
    verdicts = _verdicts(_results(ours_cpu=4.0, ref_cpu=7.0, p50=6.0, tokens=8_000.0))
    assert verdicts["server CPU per run (all processes)"] is False
    assert verdicts["runs.wait p50 (stateless, 2 nodes)"] is False
    assert verdicts["tokens vs LangGraph in-process"] is False
