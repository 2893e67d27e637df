"""`bench.run --rounds N`: servers take turns going first, figures are per-key medians."""

from __future__ import annotations

from typing import Any

import pytest

from bench import run
from bench.servers import Server
from bench.workloads import QUICK, Sizes


def _server(name: str) -> Server:
    return Server(name=name, url=f"http://{name}", pids={})


def test_rounds_alternate_and_figures_are_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    rates = {"ours": iter([10.0, 30.0, 20.0]), "ref": iter([1.0, 3.0, 2.0])}

    def fake(name: str, server: Server, sizes: Sizes, timeout: float) -> dict[str, Any]:
        calls.append(server.name)
        return {"per_second": next(rates[server.name]), "runs": 5, "label": server.name}

    monkeypatch.setattr(run, "_run_workload", fake)
    servers: dict[str, Server | None] = {"ours": _server("ours"), "reference": _server("ref")}
    entry = run._run_rounds("latency", servers, QUICK, 1.0, rounds=3)

    assert calls == ["ours", "ref", "ref", "ours", "ours", "ref"]
    assert entry["ours"] == {"per_second": 20.0, "runs": 5, "label": "ours"}
    assert entry["reference"]["per_second"] == 2.0
    assert [r["per_second"] for r in entry["ours_rounds"]] == [10.0, 30.0, 20.0]


def test_a_failed_round_stops_that_server_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake(name: str, server: Server, sizes: Sizes, timeout: float) -> dict[str, Any]:
        calls.append(server.name)
        if server.name == "ref":
            raise RuntimeError("reference fell over")
        return {"per_second": 1.0}

    monkeypatch.setattr(run, "_run_workload", fake)
    servers: dict[str, Server | None] = {"ours": _server("ours"), "reference": _server("ref")}
    entry = run._run_rounds("latency", servers, QUICK, 1.0, rounds=2)

    assert calls == ["ours", "ref", "ours"]
    assert "reference fell over" in entry["reference_error"] and "reference" not in entry
    assert entry["ours"] == {"per_second": 1.0}
