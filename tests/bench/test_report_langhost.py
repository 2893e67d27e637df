"""The table puts langhost beside `langgraph dev` on every row read from the reference."""

from __future__ import annotations

from typing import Any

from bench import report


def _results(langhost: dict[str, Any]) -> dict[str, Any]:
    return {
        "workloads": {
            "throughput": {
                "ours": {"runs_per_second": 300.0, "server_cpu_ms_per_run": 5.0},
                "reference": {"runs_per_second": 150.0, "server_cpu_ms_per_run": 5.0},
                "langhost": {"runs_per_second": 30.0, "server_cpu_ms_per_run": 30.0},
            }
        },
        "reference": {"available": True},
        "langhost": langhost,
    }


def test_every_reference_row_has_langhost_and_its_ratio() -> None:
    results = _results({"available": True})
    rows = {row["metric"]: row for row in report.rows(results)}

    rate = rows["runs.stream, concurrent clients"]
    assert (rate["vs_reference"], rate["langhost"], rate["vs_langhost"]) == (2.0, 30.0, 10.0)
    cpu = rows["server CPU per run (all processes)"]
    assert (cpu["vs_reference"], cpu["vs_langhost"]) == (1.0, 6.0)  # lower is better
    rendered = report.render(results)
    assert "vs langhost" in rendered and "10.00x" in rendered


def test_a_langhost_that_could_not_start_is_named_never_filled_in() -> None:
    results = _results({"available": False, "reason": "langhost serve exited with 1"})
    del results["workloads"]["throughput"]["langhost"]
    rows = {row["metric"]: row for row in report.rows(results)}

    assert rows["runs.stream, concurrent clients"]["langhost"] is None
    rendered = report.render(results)
    assert "LANGHOST MISSING: langhost serve exited with 1" in rendered


def test_no_langhost_column_when_skipped() -> None:
    results = _results({"available": False, "reason": "skipped (--no-langhost)"})
    assert "vs langhost" not in report.render(results)
