"""Benchmarks our server against LangGraph's own dev server and this machine's ceilings.

    .venv/bin/python -m bench.run [--quick] [--no-reference] [--no-langhost] [--only ...]

Order: the ceilings (nothing else running), then the servers up side by side (ours:
`broker api` + 2 `broker worker` on a fresh database; the reference: `langgraph dev`
from bench/.ref-venv; langhost: `langhost serve` on LangGraph's MIT Postgres runtime from
bench/.langhost-venv, fresh database; both venvs installed on first use) and each
workload against each, then the in-process checkpointer comparison. Prints the table, saves the
JSON under bench/results/ (also as latest.json). Exits 1 if one of OUR workloads
failed; a missing reference is reported, never faked, and does not fail the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, too

from bench import ceilings, checkpointers, cpu, recovery, report, slow_reader
from bench import store as store_bench
from bench.harness import fresh_database
from bench.servers import (
    Server,
    Unavailable,
    langhost_server,
    our_server,
    reference_server,
    say,
    stores_of,
)
from bench.workloads import FULL, QUICK, WORKLOADS, Sizes
from tests.services import ensure_services

RESULTS = Path(__file__).resolve().parent / "results"
# Seconds one workload may take against one server before it counts as failed.
TIMEOUT = {"full": 420.0, "quick": 60.0}
# Workloads whose CPU per run (servers, stores, the SDK client) is recorded beside the rate.
CPU_METERED = ("throughput", "background")
# The Postgres-bound workloads also run on our server behind PgBouncer (transaction mode).
POOLED_WORKLOADS = ("latency", "throughput", "background", "checkpoints")
# Workloads given the server itself (its process ids), not only its URL.
SERVER_WORKLOADS = {"slow_reader": slow_reader.workload}
NAMES = [*WORKLOADS, *SERVER_WORKLOADS]
# The same also run on our server whose Redis is a 3-master Redis Cluster, beside ours on
# one Redis ("plain"); see _run_cluster for why in a phase of their own.
CLUSTER_WORKLOADS = ("latency", "throughput", "background", "checkpoints")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip LangGraph's dev server (ours only)"
    )
    _langhost_arguments(parser)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="WORKLOAD",
        help=f"run only these (repeat or comma-separate): {', '.join(NAMES)}",
    )
    parser.add_argument(
        "--no-pooled",
        action="store_true",
        help=f"skip our server behind PgBouncer (else it runs {', '.join(POOLED_WORKLOADS)})",
    )
    parser.add_argument(
        "--no-cluster",
        action="store_true",
        help=f"skip our server on a Redis Cluster (else it runs {', '.join(CLUSTER_WORKLOADS)})",
    )
    parser.add_argument("--out", type=Path, help="where to save the JSON (default: bench/results/)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each workload N times on each server, alternating which goes first; "
        "figures are the medians (fairer ratios on a noisy machine; default 1)",
    )
    parser.add_argument(
        "--ref-jobs",
        type=int,
        default=20,
        help="the reference's --n-jobs-per-worker (default 20: as many slots as our 2x10)",
    )
    args = parser.parse_args(argv)
    chosen = [name for value in args.only for name in value.split(",") if name]
    known = [*NAMES, "recovery"]  # recovery: its own clusters (bench/recovery.py)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {known}")
    # recovery waits out the old 30 s lease for its baseline: full runs, or when asked.
    default = [name for name in known if name != "recovery" or not args.quick]
    args.workloads = [
        name for name in (known if chosen else default) if not chosen or name in chosen
    ]
    return args


def _langhost_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-langhost",
        action="store_true",
        help="skip langhost (LangGraph's API on the MIT Postgres runtime), the durable reference",
    )
    parser.add_argument(
        "--langhost-workers",
        type=int,
        default=1,
        help="langhost's uvicorn processes, each serving HTTP and running jobs (default 1: "
        "with 2, streamed runs come back empty under load)",
    )
    parser.add_argument(
        "--langhost-jobs",
        type=int,
        default=20,
        help="langhost's --n-jobs-per-worker (default 20: as many run slots as our 2x10)",
    )


def _versions() -> dict[str, str]:
    names = ["langgraph", "langgraph-sdk", "langgraph-checkpoint", "langgraph-checkpoint-postgres"]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _git() -> dict[str, str]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"), "dirty": str(bool(run("status", "--porcelain")))}


def _meta(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "workloads": args.workloads,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average_start": list(os.getloadavg()),
        "our_layout": "1 broker api + 2 broker worker (N_JOBS_PER_WORKER default)",
        "reference_jobs": args.ref_jobs,
        "langhost_layout": f"{args.langhost_workers} workers x {args.langhost_jobs} jobs",
        "packages": _versions(),
        "git": _git(),
        "sizes": asdict(sizes),
    }


def _measure_ceilings(sizes: Sizes, admin_uri: str, redis_uri: str) -> dict[str, Any]:
    say(
        "measuring the ceilings: raw redis-py pub/sub, asyncpg commits and batched inserts, "
        "LangGraph streaming in-process"
    )
    with ceilings.scratch_database(admin_uri, "ceiling") as uri:
        measured = asyncio.run(
            ceilings.measure_all(
                redis_uri,
                uri,
                messages=sizes.ceiling_messages,
                size=sizes.stream_pad + 40,  # about one custom event's SSE frame
                commits=sizes.ceiling_commits,
                rows=sizes.ceiling_rows,
                events=sizes.stream_events,
                tokens=sizes.stream_tokens,
                pad=sizes.stream_pad,
            )
        )
    say(
        "    "
        + ", ".join(f"{name} {figures['per_second']:,.0f}/s" for name, figures in measured.items())
    )
    return measured


def _run_workload(name: str, server: Server, sizes: Sizes, timeout: float) -> dict[str, Any]:
    say(f"{name}: {server.name} ({server.url})")
    started = time.perf_counter()
    metered = name in CPU_METERED
    databases, ports = stores_of(server)
    before = cpu.snapshot(server.pids, databases, ports) if metered else {}
    work: Awaitable[dict[str, Any]]
    if name in SERVER_WORKLOADS:  # needs the server's processes, not only its URL
        work = SERVER_WORKLOADS[name](server, sizes)
    else:
        work = WORKLOADS[name](server.url, sizes)
    figures = asyncio.run(asyncio.wait_for(work, timeout))
    if metered:
        runs = int(figures.get("completed", figures["runs"]))
        after = cpu.snapshot(server.pids, databases, ports)
        figures.update(cpu.Usage.between(before, after).per_run_ms(runs))
    shown = {k: v for k, v in figures.items() if isinstance(v, float)}
    summary = ", ".join(f"{k} {v:,.1f}" for k, v in list(shown.items())[:6])
    say(f"    {summary}  [{time.perf_counter() - started:.0f}s]")
    return figures


def _in_process(sizes: Sizes, admin_uri: str) -> dict[str, Any]:
    missing = checkpointers.theirs_available()
    if missing:
        raise checkpointers.Unavailable(missing)
    say("checkpoints in-process: PostgresCheckpointer vs AsyncPostgresSaver, same graph")
    with (
        fresh_database(admin_uri) as our_uri,
        ceilings.scratch_database(admin_uri, "saver") as their_uri,
    ):
        figures = asyncio.run(
            checkpointers.compare(
                our_uri,
                their_uri,
                runs=sizes.checkpoint_runs,
                steps=sizes.checkpoint_steps,
                size=sizes.checkpoint_size,
                rounds=max(sizes.checkpoint_rounds, 3),
            )
        )
    say(
        f"    ours {figures['ours_supersteps_per_second']:,.0f} steps/s (fenced "
        f"{figures['ours_fenced_supersteps_per_second']:,.0f}), AsyncPostgresSaver "
        f"{figures['theirs_supersteps_per_second']:,.0f} steps/s, ratio {figures['ratio']:.2f}"
    )
    return figures


def _store_in_process(sizes: Sizes, admin_uri: str) -> dict[str, Any]:
    missing = store_bench.theirs_available()
    if missing:
        raise store_bench.Unavailable(missing)
    say("store in-process: ours vs AsyncPostgresStore (no pgvector: no index on theirs)")
    with (
        fresh_database(admin_uri) as our_uri,
        ceilings.scratch_database(admin_uri, "store") as their_uri,
    ):
        figures = asyncio.run(
            store_bench.compare(
                our_uri,
                their_uri,
                items=sizes.store_items,
                queries=sizes.store_queries,
                concurrency=sizes.store_concurrency,
                rounds=5,
            )
        )
    say(
        f"    put {figures['put_ratio']:.2f}x, get {figures['get_ratio']:.2f}x, search "
        f"{figures['search_ratio']:.2f}x AsyncPostgresStore; semantic search (ours) "
        f"{figures['ours_indexed_semantic_search_per_second']:,.0f}/s"
    )
    return figures


def _run_rounds(
    name: str, servers: dict[str, Server | None], sizes: Sizes, timeout: float, rounds: int
) -> dict[str, Any]:
    """The workload on each server `rounds` times, the first server alternating (so drift
    in a noisy machine's speed lands on both alike); each figure is the median."""
    entry: dict[str, Any] = {}
    measured: dict[str, list[dict[str, Any]]] = {key: [] for key in servers}
    for index in range(rounds):
        order = list(servers.items())
        for key, server in reversed(order) if index % 2 else order:
            if server is None or f"{key}_error" in entry:
                continue
            try:
                measured[key].append(_run_workload(name, server, sizes, timeout))
            except Exception as exc:
                say(f"    {name} on {server.name} FAILED: {exc!r}")
                entry[f"{key}_error"] = repr(exc)
    for key, figures in measured.items():
        if figures:
            entry[key] = _medians(figures)
        if len(figures) > 1:
            entry[f"{key}_rounds"] = figures
    return entry


def _medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over rounds; what is not a number comes from the first."""
    merged = dict(rounds[0])
    for key in merged:
        values = [r.get(key) for r in rounds]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(values):
            merged[key] = statistics.median(numbers)
    return merged


def _start_reference(
    args: argparse.Namespace, results: dict[str, Any], stack: ExitStack
) -> Server | None:
    """The reference server, or None with the reason recorded (and said) if it cannot run."""
    if args.no_reference:
        results["reference"] = {"available": False, "reason": "skipped (--no-reference)"}
        return None
    try:
        server = stack.enter_context(reference_server(args.ref_jobs))
    except Unavailable as exc:
        reason = str(exc)
        say(f"REFERENCE UNAVAILABLE: {reason}")
        say("going on with our figures only; the reference columns are marked missing")
        results["reference"] = {"available": False, "reason": reason}
        return None
    results["reference"] = {"available": True, "versions": server.versions}
    return server


def _start_langhost(
    args: argparse.Namespace, results: dict[str, Any], stack: ExitStack
) -> Server | None:
    """langhost, or None with the reason recorded (and said) if it cannot run."""
    if args.no_langhost:
        results["langhost"] = {"available": False, "reason": "skipped (--no-langhost)"}
        return None
    try:
        server = stack.enter_context(langhost_server(args.langhost_workers, args.langhost_jobs))
    except Unavailable as exc:
        reason = str(exc)
        say(f"REFERENCE UNAVAILABLE (langhost): {reason}")
        say("going on without it; the langhost columns are marked missing")
        results["langhost"] = {"available": False, "reason": reason}
        return None
    results["langhost"] = {"available": True, "versions": server.versions}
    return server


def _run_cluster(
    args: argparse.Namespace, sizes: Sizes, timeout: float, workloads: dict[str, dict[str, Any]]
) -> None:
    """Ours on a 3-master Redis Cluster ("cluster") and ours on one Redis ("plain"), each
    on a fresh database, up one at a time (each side's processes hold up to 45 Postgres
    connections: both beside the main phase's servers overran a max_connections of 100),
    every cluster workload on one then on the other, the first alternating by round.
    Medians go into the workload's entry as `cluster` and `plain` (and their rounds)."""
    names = [name for name in args.workloads if name in CLUSTER_WORKLOADS]
    if args.no_cluster or not names:
        return
    measured: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"plain": [], "cluster": []} for name in names
    }
    for index in range(args.rounds):
        order = ["plain", "cluster"]
        for side in reversed(order) if index % 2 else order:
            where = "a 3-master Redis Cluster" if side == "cluster" else "one Redis"
            say(f"starting ours on {where} (cluster rows: {side}), fresh database")
            with our_server(cluster=side == "cluster") as server:
                for name in names:
                    entry = workloads.setdefault(name, {})
                    if f"{side}_error" in entry:
                        continue
                    try:
                        measured[name][side].append(_run_workload(name, server, sizes, timeout))
                    except Exception as exc:
                        say(f"    {name} on {server.name} FAILED: {exc!r}")
                        entry[f"{side}_error"] = repr(exc)
    for name, by_side in measured.items():
        for side, figures in by_side.items():
            if figures:
                workloads[name][side] = _medians(figures)
            if len(figures) > 1:
                workloads[name][f"{side}_rounds"] = figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    timeout = TIMEOUT["quick" if args.quick else "full"]
    services = ensure_services(allow_containers=False)
    results: dict[str, Any] = {"meta": _meta(args, sizes), "workloads": {}}
    begun = time.perf_counter()
    results["ceilings"] = _measure_ceilings(sizes, services.database_uri, services.redis_uri)
    workloads: dict[str, dict[str, Any]] = results["workloads"]
    with ExitStack() as stack:
        say("starting our server: broker api + 2 x broker worker, fresh database")
        ours = stack.enter_context(our_server())
        pooled = None
        if not args.no_pooled and set(POOLED_WORKLOADS) & set(args.workloads):
            say("starting ours again behind PgBouncer (transaction mode), fresh database")
            pooled = stack.enter_context(our_server(pooled=True))
        reference = _start_reference(args, results, stack)
        langhost = _start_langhost(args, results, stack)
        for name in args.workloads:
            if name == "recovery":
                continue
            servers = {"ours": ours, "reference": reference, "langhost": langhost}
            if name in POOLED_WORKLOADS:
                servers["pooled"] = pooled
            workloads[name] = _run_rounds(name, servers, sizes, timeout, args.rounds)
    _run_cluster(args, sizes, timeout, workloads)
    if "checkpoints" in args.workloads:
        entry = workloads["checkpoints"]
        try:
            entry["in_process"] = _in_process(sizes, services.database_uri)
        except Exception as exc:
            say(f"    checkpoints in-process: not measured: {exc}")
            entry["in_process_error"] = str(exc)
    if "store" in args.workloads:
        entry = workloads["store"]
        try:
            entry["in_process"] = _store_in_process(sizes, services.database_uri)
        except Exception as exc:
            say(f"    store in-process: not measured: {exc}")
            entry["in_process_error"] = str(exc)
    if "recovery" in args.workloads:
        try:
            workloads["recovery"] = recovery.run(runs=6 if args.quick else 30)
        except Exception as exc:
            say(f"    recovery FAILED: {exc!r}")
            workloads["recovery"] = {"ours_error": repr(exc)}
    results["meta"]["seconds"] = round(time.perf_counter() - begun, 1)
    results["meta"]["load_average_end"] = list(os.getloadavg())
    results["rows"] = report.rows(results)
    return results


def save(results: dict[str, Any], out: Path | None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    mode = results["meta"]["mode"]
    path = out or RESULTS / f"bench-{mode}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, default=str, allow_nan=True)
    path.write_text(text + "\n")
    if out is None:
        (RESULTS / "latest.json").write_text(text + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    results = run(args)
    path = save(results, args.out)
    print()
    print(report.render(results))
    print()
    say(f"results saved to {path} ({results['meta']['seconds']:.0f}s in all)")
    failed = [n for n, w in results["workloads"].items() if w.get("ours_error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
