"""The table: every figure beside the references' and the ceiling's, ratios, target verdicts.

Two references: `langgraph dev` (in-memory) and langhost (LangGraph's API on the MIT
Postgres runtime); every row read from the first has the same figure from the second.
Ratios read as "how many times better ours is": ours ÷ reference for rates, reference ÷
ours for times. "of ceiling" is ours ÷ the physical ceiling (rates only). A verdict is
PASS/FAIL, or "n/a" when a figure it needs is missing; targets are reported, not asserted.

The targets are issue 19's where it set one (server CPU per run ≤ 0.5x `langgraph dev`'s,
runs.wait p50 ≤ 5 ms, first event ≤ 20 ms, tokens ≥ 90 % of LangGraph's in-process rate,
recovery and slow readers), earlier issues' elsewhere (custom events, the in-process
checkpointer and store).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Results = dict[str, Any]
Figure = Callable[[Results], float | None]


def _get(results: Results, *path: str) -> float | None:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def ours(workload: str, key: str) -> Figure:
    return lambda r: _get(r, "workloads", workload, "ours", key)


@dataclass(frozen=True)
class Side:
    """One server's figure in one workload (a Figure that says where it reads)."""

    side: str
    workload: str
    key: str

    def __call__(self, results: Results) -> float | None:
        return _get(results, "workloads", self.workload, self.side, self.key)


def ref(workload: str, key: str) -> Figure:
    return Side("reference", workload, key)


def langhost_of(reference: Figure | None) -> Figure | None:
    """The same figure from langhost, for a row whose reference is `langgraph dev`'s."""
    if isinstance(reference, Side) and reference.side == "reference":
        return Side("langhost", reference.workload, reference.key)
    return None


def pooled(workload: str, key: str) -> Figure:
    return lambda r: _get(r, "workloads", workload, "pooled", key)


def cluster(workload: str, key: str) -> Figure:
    return lambda r: _get(r, "workloads", workload, "cluster", key)


def plain(workload: str, key: str) -> Figure:
    """Ours on one Redis, measured beside `cluster` (bench/run.py's cluster phase)."""
    return lambda r: _get(r, "workloads", workload, "plain", key)


def ceiling(name: str) -> Figure:
    return lambda r: _get(r, "ceilings", name, "per_second")


@dataclass(frozen=True)
class Target:
    text: str
    # ours, reference, ceiling, results → verdict (None: cannot tell)
    check: Callable[[float | None, float | None, float | None, Results], bool | None]


def at_most(limit: float, unit: str) -> Target:
    return Target(f"≤ {limit:g} {unit}", lambda o, _r, _c, _res: None if o is None else o <= limit)


def times_ref(factor: float) -> Target:
    def check(o: float | None, r: float | None, _c: float | None, _res: Results) -> bool | None:
        return None if o is None or r is None else o >= factor * r

    return Target(f"≥ {factor:g}x ref", check)


def at_most_ref(factor: float) -> Target:
    """A cost (lower is better) at most `factor` times the reference's."""

    def check(o: float | None, r: float | None, _c: float | None, _res: Results) -> bool | None:
        return None if o is None or r is None else o <= factor * r

    return Target(f"≤ {factor:g}x ref", check)


def of_ceiling(share: float) -> Target:
    def check(o: float | None, _r: float | None, c: float | None, _res: Results) -> bool | None:
        return None if o is None or c is None else o >= share * c

    return Target(f"≥ {share:.0%} of ceil", check)


def ref_and_ceiling(factor: float, share: float) -> Target:
    def check(o: float | None, r: float | None, c: float | None, _res: Results) -> bool | None:
        if o is None or r is None or c is None:
            return None
        return o >= factor * r and o >= share * c

    return Target(f"≥ {factor:g}x ref, ≥ {share:.0%} raw", check)


def history_flat(factor: float) -> Target:
    def check(o: float | None, _r: float | None, _c: float | None, res: Results) -> bool | None:
        small = _get(res, "workloads", "history", "ours", "small_p99_ms")
        return None if o is None or small is None else o <= factor * small

    return Target(f"≤ {factor:g}x p99 @ small", check)


@dataclass(frozen=True)
class Row:
    workload: str
    metric: str
    unit: str
    ours: Figure
    reference: Figure | None = None
    ceiling: Figure | None = None
    lower_is_better: bool = False
    target: Target | None = None
    reference_label: str = "ref"
    needs: str | None = None  # a side that must have run for the row to show ("pooled", "cluster")


ROWS = [
    Row("latency", "runs.wait p50 (stateless, 2 nodes)", "ms", ours("latency", "p50_ms"),
        ref("latency", "p50_ms"), lower_is_better=True, target=at_most(5, "ms")),
    Row("latency", "runs.wait p99", "ms", ours("latency", "p99_ms"), ref("latency", "p99_ms"),
        lower_is_better=True),
    Row("throughput", "runs.stream, concurrent clients", "runs/s",
        ours("throughput", "runs_per_second"), ref("throughput", "runs_per_second")),
    Row("throughput", "runs.stream p50 under load", "ms", ours("throughput", "p50_ms"),
        ref("throughput", "p50_ms"), lower_is_better=True),
    Row("throughput", "server CPU per run (all processes)", "ms",
        ours("throughput", "server_cpu_ms_per_run"), ref("throughput", "server_cpu_ms_per_run"),
        lower_is_better=True, target=at_most_ref(0.5)),
    Row("throughput", "… of which Postgres + Redis", "ms",
        ours("throughput", "stores_cpu_ms_per_run"), ref("throughput", "stores_cpu_ms_per_run"),
        lower_is_better=True),
    Row("throughput", "SDK client CPU per run", "ms", ours("throughput", "client_cpu_ms_per_run"),
        ref("throughput", "client_cpu_ms_per_run"), lower_is_better=True),
    Row("streaming", "custom events received", "ev/s", ours("streaming", "custom_per_second"),
        ref("streaming", "custom_per_second"), ceiling("pubsub"), target=ref_and_ceiling(4, 0.55)),
    Row("streaming", "custom events vs LangGraph in-process", "ev/s",
        ours("streaming", "custom_per_second"), ref("streaming", "custom_per_second"),
        ceiling("langgraph_custom")),
    Row("streaming", "custom: time to first event", "ms", ours("streaming", "custom_first_ms"),
        ref("streaming", "custom_first_ms"), lower_is_better=True, target=at_most(20, "ms")),
    Row("streaming", "messages-tuple tokens received", "tok/s",
        ours("streaming", "tokens_per_second"), ref("streaming", "tokens_per_second"),
        ceiling("pubsub")),
    Row("streaming", "tokens vs LangGraph in-process", "tok/s",
        ours("streaming", "tokens_per_second"), ref("streaming", "tokens_per_second"),
        ceiling("langgraph_tokens"), target=of_ceiling(0.9)),
    Row("streaming", "tokens: time to first token", "ms", ours("streaming", "tokens_first_ms"),
        ref("streaming", "tokens_first_ms"), lower_is_better=True, target=at_most(20, "ms")),
    Row("background", "runs.create xN then join all", "runs/s",
        ours("background", "runs_per_second"), ref("background", "runs_per_second")),
    Row("background", "runs.create alone", "runs/s", ours("background", "creates_per_second"),
        ref("background", "creates_per_second")),
    Row("background", "server CPU per run (incl. thread)", "ms",
        ours("background", "server_cpu_ms_per_run"), ref("background", "server_cpu_ms_per_run"),
        lower_is_better=True, target=at_most_ref(0.5)),
    Row("background", "… of which Postgres + Redis", "ms",
        ours("background", "stores_cpu_ms_per_run"), ref("background", "stores_cpu_ms_per_run"),
        lower_is_better=True),
    Row("background", "SDK client CPU per run", "ms", ours("background", "client_cpu_ms_per_run"),
        ref("background", "client_cpu_ms_per_run"), lower_is_better=True),
    Row("checkpoints", "threaded runs via the server", "steps/s",
        ours("checkpoints", "supersteps_per_second"), ref("checkpoints", "supersteps_per_second"),
        ceiling("commit_20")),
    Row("checkpoints", "in-process: ours vs AsyncPostgresSaver", "steps/s",
        lambda r: _get(r, "workloads", "checkpoints", "in_process", "ours_supersteps_per_second"),
        lambda r: _get(r, "workloads", "checkpoints", "in_process", "theirs_supersteps_per_second"),
        ceiling("commit_20"), target=times_ref(1.2), reference_label="AsyncPostgresSaver"),
    Row("checkpoints", "in-process: ours fenced (as the worker) vs same", "steps/s",
        lambda r: _get(r, "workloads", "checkpoints", "in_process", "ours_fenced_supersteps_per_second"),
        lambda r: _get(r, "workloads", "checkpoints", "in_process", "theirs_supersteps_per_second"),
        ceiling("commit_20"), reference_label="AsyncPostgresSaver"),
    Row("history", "get_history(limit=50) p50, small thread", "ms",
        ours("history", "small_p50_ms"), ref("history", "small_p50_ms"), lower_is_better=True),
    Row("history", "get_history(limit=50) p99, small thread", "ms",
        ours("history", "small_p99_ms"), ref("history", "small_p99_ms"), lower_is_better=True),
    Row("history", "get_history(limit=50) p50, large thread", "ms",
        ours("history", "large_p50_ms"), ref("history", "large_p50_ms"), lower_is_better=True),
    Row("history", "get_history(limit=50) p99, large thread", "ms",
        ours("history", "large_p99_ms"), ref("history", "large_p99_ms"), lower_is_better=True,
        target=history_flat(2)),
    Row("history", "building the large thread (1 run)", "steps/s",
        ours("history", "build_supersteps_per_second"),
        ref("history", "build_supersteps_per_second")),
    Row("store", "in-process put vs AsyncPostgresStore", "ops/s",
        lambda r: _get(r, "workloads", "store", "in_process", "ours_put_per_second"),
        lambda r: _get(r, "workloads", "store", "in_process", "theirs_put_per_second"),
        target=times_ref(1.2), reference_label="AsyncPostgresStore"),
    Row("store", "in-process get vs AsyncPostgresStore", "ops/s",
        lambda r: _get(r, "workloads", "store", "in_process", "ours_get_per_second"),
        lambda r: _get(r, "workloads", "store", "in_process", "theirs_get_per_second"),
        target=times_ref(1.2), reference_label="AsyncPostgresStore"),
    Row("store", "in-process filtered search vs AsyncPostgresStore", "ops/s",
        lambda r: _get(r, "workloads", "store", "in_process", "ours_search_per_second"),
        lambda r: _get(r, "workloads", "store", "in_process", "theirs_search_per_second"),
        target=times_ref(1.2), reference_label="AsyncPostgresStore"),
    Row("store", "in-process semantic search (ours only)", "ops/s",
        lambda r: _get(r, "workloads", "store", "in_process",
                       "ours_indexed_semantic_search_per_second")),
    Row("store", "HTTP put_item", "ops/s", ours("store", "put_per_second"),
        ref("store", "put_per_second")),
    Row("store", "HTTP put_item p99", "ms", ours("store", "put_p99_ms"),
        ref("store", "put_p99_ms"), lower_is_better=True),
    Row("store", "HTTP get_item", "ops/s", ours("store", "get_per_second"),
        ref("store", "get_per_second")),
    Row("store", "HTTP get_item p99", "ms", ours("store", "get_p99_ms"),
        ref("store", "get_p99_ms"), lower_is_better=True),
    Row("store", "HTTP search_items with a query", "ops/s",
        ours("store", "semantic_search_per_second"), ref("store", "semantic_search_per_second")),
    Row("store", "HTTP search_items with a query p99", "ms",
        ours("store", "semantic_search_p99_ms"), ref("store", "semantic_search_p99_ms"),
        lower_is_better=True),
    # Recovery (bench/recovery.py): ours only, the in-memory reference has nothing to
    # recover; beside ours, ours as it was before worker liveness (30 s lease, requeue).
    Row("recovery", "kill -9 of a busy worker: resumed p50 (no ref)", "s",
        ours("recovery", "kill_resume_p50_s"), ref("recovery", "kill_resume_p50_s"),
        lower_is_better=True, reference_label="30 s lease"),
    Row("recovery", "kill -9 of a busy worker: resumed p99 (no ref)", "s",
        ours("recovery", "kill_resume_p99_s"), ref("recovery", "kill_resume_p99_s"),
        lower_is_better=True, target=at_most(5, "s"), reference_label="30 s lease"),
    Row("recovery", "kill -9: double writers (no ref)", "threads",
        ours("recovery", "double_writers"), ref("recovery", "double_writers"),
        lower_is_better=True, target=at_most(0, "threads"), reference_label="30 s lease"),
    Row("recovery", "Redis FLUSHALL: all pending claimed (no ref)", "s",
        ours("recovery", "flush_all_claimed_s"), ref("recovery", "flush_all_claimed_s"),
        lower_is_better=True, target=at_most(2, "s"), reference_label="requeue"),
    Row("recovery", "idle cluster: Redis commands (no ref)", "cmd/s",
        ours("recovery", "idle_redis_commands_per_second"),
        ref("recovery", "idle_redis_commands_per_second"), lower_is_better=True,
        reference_label="before"),
    Row("recovery", "idle cluster: Postgres commits (no ref)", "tx/s",
        ours("recovery", "idle_postgres_commits_per_second"),
        ref("recovery", "idle_postgres_commits_per_second"), lower_is_better=True,
        reference_label="before"),
    # Ours behind PgBouncer (transaction mode) in the "ours" column, ours direct beside it.
    Row("latency", "pooled: runs.wait p50", "ms", pooled("latency", "p50_ms"),
        ours("latency", "p50_ms"), lower_is_better=True, reference_label="direct",
        needs="pooled"),
    Row("throughput", "pooled: runs.stream, concurrent clients", "runs/s",
        pooled("throughput", "runs_per_second"), ours("throughput", "runs_per_second"),
        reference_label="direct", needs="pooled"),
    Row("throughput", "pooled: server CPU per run", "ms",
        pooled("throughput", "server_cpu_ms_per_run"), ours("throughput", "server_cpu_ms_per_run"),
        lower_is_better=True, reference_label="direct", needs="pooled"),
    Row("background", "pooled: runs.create xN then join all", "runs/s",
        pooled("background", "runs_per_second"), ours("background", "runs_per_second"),
        reference_label="direct", needs="pooled"),
    Row("checkpoints", "pooled: threaded runs via the server", "steps/s",
        pooled("checkpoints", "supersteps_per_second"), ours("checkpoints", "supersteps_per_second"),
        reference_label="direct", needs="pooled"),
    Row("slow_reader", "API RSS growth, a stalled SSE reader (plain run)", "MB",
        ours("slow_reader", "plain_api_rss_growth_mb"),
        ref("slow_reader", "plain_api_rss_growth_mb"), lower_is_better=True,
        target=at_most(16, "MB")),
    Row("slow_reader", "API RSS growth, a stalled SSE reader (resumable run)", "MB",
        ours("slow_reader", "resumable_api_rss_growth_mb"),
        ref("slow_reader", "resumable_api_rss_growth_mb"), lower_is_better=True,
        target=at_most(16, "MB")),
    # Ours on a 3-master Redis Cluster in the "ours" column, ours on one Redis beside it
    # (both measured in their own phase, bench/run.py _run_cluster).
    Row("latency", "cluster: runs.wait p50", "ms", cluster("latency", "p50_ms"),
        plain("latency", "p50_ms"), lower_is_better=True, reference_label="plain",
        needs="cluster"),
    Row("throughput", "cluster: runs.stream, concurrent clients", "runs/s",
        cluster("throughput", "runs_per_second"), plain("throughput", "runs_per_second"),
        reference_label="plain", needs="cluster"),
    Row("throughput", "cluster: server CPU per run", "ms",
        cluster("throughput", "server_cpu_ms_per_run"), plain("throughput", "server_cpu_ms_per_run"),
        lower_is_better=True, reference_label="plain", needs="cluster"),
    Row("background", "cluster: runs.create xN then join all", "runs/s",
        cluster("background", "runs_per_second"), plain("background", "runs_per_second"),
        reference_label="plain", needs="cluster"),
    Row("checkpoints", "cluster: threaded runs via the server", "steps/s",
        cluster("checkpoints", "supersteps_per_second"),
        plain("checkpoints", "supersteps_per_second"), reference_label="plain", needs="cluster"),
]  # fmt: skip


def _versus(o: float | None, other: float | None, lower_is_better: bool) -> float | None:
    if not o or not other:
        return None
    return other / o if lower_is_better else o / other


def rows(results: Results) -> list[dict[str, Any]]:
    """The table as data (also saved in the JSON)."""
    table = []
    selected = results.get("workloads", {})
    for row in ROWS:
        if row.workload not in selected:
            continue
        if row.needs and not any(k.startswith(row.needs) for k in selected[row.workload]):
            continue
        o = row.ours(results)
        r = row.reference(results) if row.reference else None
        c = row.ceiling(results) if row.ceiling else None
        versus = _versus(o, r, row.lower_is_better)
        theirs = langhost_of(row.reference)
        lh = theirs(results) if theirs else None
        verdict = row.target.check(o, r, c, results) if row.target else None
        table.append(
            {
                "workload": row.workload,
                "metric": row.metric,
                "unit": row.unit,
                "ours": o,
                "reference": r,
                "reference_label": row.reference_label,
                "ceiling": c,
                "vs_reference": versus,
                "langhost": lh,
                "vs_langhost": _versus(o, lh, row.lower_is_better),
                "of_ceiling": o / c if o is not None and c else None,
                "target": row.target.text if row.target else None,
                "pass": verdict,
            }
        )
    return table


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _verdict(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return ""
    return {True: "PASS", False: "FAIL", None: "n/a"}[row["pass"]]


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "—"


def _langhost_shown(results: Results) -> bool:
    """langhost's columns, unless it was not part of the run (skipped, or an older JSON)."""
    langhost = results.get("langhost")
    return isinstance(langhost, dict) and not str(langhost.get("reason", "")).startswith("skipped")


def render(results: Results) -> str:
    table = results.get("rows") or rows(results)
    langhost = _langhost_shown(results)
    head = ["workload", "metric", "unit", "ours", "reference", "vs ref"]
    if langhost:
        head += ["langhost", "vs langhost"]
    head += ["ceiling", "of ceil", "target", "result"]
    lines = [head]
    for row in table:
        reference = _number(row["reference"])
        if row["reference"] is not None and row["reference_label"] != "ref":
            reference += f" ({row['reference_label']})"
        line = [
            row["workload"],
            row["metric"],
            row["unit"],
            _number(row["ours"]),
            reference,
            _ratio(row["vs_reference"]),
        ]
        if langhost:
            line += [_number(row.get("langhost")), _ratio(row.get("vs_langhost"))]
        line += [
            _number(row["ceiling"]),
            f"{row['of_ceiling']:.0%}" if row["of_ceiling"] is not None else "",
            row["target"] or "",
            _verdict(row),
        ]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    words = {"workload", "metric", "unit", "target", "result"}
    numeric = {i for i, name in enumerate(head) if name not in words}
    out = []
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    out.extend(_notes(results))
    return "\n".join(out)


def _notes(results: Results) -> list[str]:
    shown = _langhost_shown(results)
    notes = [
        "",
        "reference: langgraph dev (in-memory)"
        + ("; langhost: LangGraph's API on the MIT Postgres runtime" if shown else "")
        + ". vs ref"
        + (" / vs langhost" if shown else "")
        + ": times better than that server (rates ours÷theirs, times theirs÷ours); "
        "of ceil: ours÷ceiling.",
        "ceilings: streaming rows → raw redis-py pub/sub msgs/s, or LangGraph's own astream "
        "rate in-process where the row says so; checkpoint rows → asyncpg "
        "single-row commits/s over 20 connections (each superstep needs ≥ 2 commits).",
    ]
    reference = results.get("reference", {})
    if not reference.get("available"):
        notes.append(f"REFERENCE MISSING: {reference.get('reason', 'not run')}")
    langhost = results.get("langhost", {})
    if shown and not langhost.get("available"):
        notes.append(f"LANGHOST MISSING: {langhost.get('reason', 'not run')}")
    for name, workload in results.get("workloads", {}).items():
        for side in ("ours", "pooled", "plain", "cluster", "reference", "langhost", "in_process"):
            error = workload.get(f"{side}_error")
            if error:
                notes.append(f"{name} ({side}) FAILED: {error}")
    ceilings = results.get("ceilings", {})
    if ceilings:
        parts = [
            f"{name} {_number(_get(results, 'ceilings', name, 'per_second'))}/s"
            for name in ceilings
            if isinstance(ceilings[name], dict)
        ]
        notes.append("ceilings measured: " + ", ".join(parts))
    return notes
