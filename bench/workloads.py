"""The workloads, each an async function of a server URL and the sizes, through `langgraph_sdk`.

Every function returns a flat dict of figures (numbers, plus a few counts and notes).
They run the same requests against either server; nothing here knows which one it is.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

T = TypeVar("T")
TWO_STEP_INPUT = {"value": 1}
TWO_STEP_OUTPUT = 4  # (1 + 1) * 2


@dataclass(frozen=True)
class Sizes:
    """How much each workload does; FULL for `make bench`, QUICK for a smoke run."""

    latency_runs: int
    latency_warmup: int
    latency_seconds: float  # ... or fewer runs, once this long has passed (a slow server)
    throughput_clients: int
    throughput_warmup: float  # seconds of load before counting
    throughput_seconds: float  # seconds counted
    stream_events: int
    stream_tokens: int
    stream_pad: int  # bytes of padding in each custom payload
    stream_repeats: int
    background_runs: int
    background_concurrency: int
    checkpoint_runs: int
    checkpoint_steps: int
    checkpoint_size: int
    checkpoint_rounds: int
    history_small: int  # checkpoints on the small thread
    history_large: int  # ... and on the large one
    history_calls: int
    history_limit: int
    ceiling_messages: int
    ceiling_commits: int
    ceiling_rows: int
    store_items: int = 1000  # items put, then read back, by the store workloads
    store_queries: int = 200  # searches (filtered listings, semantic queries)
    store_concurrency: int = 10


FULL = Sizes(
    latency_runs=300,
    latency_warmup=10,
    latency_seconds=60.0,
    throughput_clients=50,
    throughput_warmup=3.0,
    throughput_seconds=15.0,
    stream_events=5000,
    stream_tokens=5000,
    stream_pad=64,
    stream_repeats=3,
    background_runs=500,
    background_concurrency=50,
    checkpoint_runs=50,
    checkpoint_steps=10,
    checkpoint_size=1024,
    checkpoint_rounds=3,
    history_small=100,
    history_large=5000,
    history_calls=200,
    history_limit=50,
    ceiling_messages=50_000,
    ceiling_commits=4000,
    ceiling_rows=50_000,
)

QUICK = Sizes(
    latency_runs=10,
    latency_warmup=2,
    latency_seconds=10.0,
    throughput_clients=5,
    throughput_warmup=0.5,
    throughput_seconds=1.5,
    stream_events=200,
    stream_tokens=100,
    stream_pad=64,
    stream_repeats=1,
    background_runs=20,
    background_concurrency=10,
    checkpoint_runs=5,
    checkpoint_steps=10,
    checkpoint_size=1024,
    checkpoint_rounds=1,
    history_small=10,
    history_large=100,
    history_calls=10,
    history_limit=50,
    ceiling_messages=2000,
    ceiling_commits=200,
    ceiling_rows=2000,
    store_items=50,
    store_queries=10,
    store_concurrency=4,
)


class WorkloadError(Exception):
    """A workload saw wrong results (lost events, failed runs): its figures would lie."""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def client_for(url: str) -> LangGraphClient:
    return get_client(url=url, api_key=None)


@asynccontextmanager
async def clients(url: str, count: int = 1) -> AsyncIterator[list[LangGraphClient]]:
    made = [client_for(url) for _ in range(count)]
    try:
        yield made
    finally:
        await asyncio.gather(*(c.aclose() for c in made), return_exceptions=True)


async def bounded(concurrency: int, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Runs the jobs with at most `concurrency` in flight; results in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


def _value(output: Any) -> Any:
    return output.get("value") if isinstance(output, dict) else None


# -- 1. latency -------------------------------------------------------------------------


async def latency(url: str, sizes: Sizes) -> dict[str, Any]:
    """Sequential stateless `runs.wait` of the 2-node graph: p50/p99 in ms.

    `latency_runs` runs after a warm-up, or as many as fit in `latency_seconds`.
    """
    samples: list[float] = []
    deadline = time.perf_counter() + sizes.latency_seconds
    async with clients(url) as (client,):
        for index in range(sizes.latency_warmup + sizes.latency_runs):
            if index > sizes.latency_warmup + 10 and time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            output = await client.runs.wait(None, "two_step", input=TWO_STEP_INPUT)
            elapsed = time.perf_counter() - started
            if _value(output) != TWO_STEP_OUTPUT:
                raise WorkloadError(f"runs.wait answered {output!r}")
            if index >= sizes.latency_warmup:
                samples.append(elapsed)
    return {
        "p50_ms": _ms(percentile(samples, 50)),
        "p90_ms": _ms(percentile(samples, 90)),
        "p99_ms": _ms(percentile(samples, 99)),
        "mean_ms": _ms(statistics.fmean(samples)),
        "runs": len(samples),
    }


# -- 2. throughput ----------------------------------------------------------------------


async def throughput(url: str, sizes: Sizes) -> dict[str, Any]:
    """N clients each looping stateless `runs.stream`; runs completed per second."""
    started = time.perf_counter()
    counting_from = started + sizes.throughput_warmup
    until = counting_from + sizes.throughput_seconds
    durations: list[float] = []
    errors: list[str] = []
    completed = 0  # every run that succeeded, warm-up included: what the CPU was spent on

    async def loop(client: LangGraphClient) -> None:
        nonlocal completed
        while time.perf_counter() < until:
            began = time.perf_counter()
            last: Any = None
            try:
                async for part in client.runs.stream(None, "two_step", input=TWO_STEP_INPUT):
                    if part.event == "values":
                        last = part.data
            except Exception as exc:
                errors.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            done = time.perf_counter()
            if _value(last) != TWO_STEP_OUTPUT:
                errors.append(f"final values {last!r}")
                continue
            completed += 1
            if counting_from <= done <= until:
                durations.append(done - began)

    async with clients(url, sizes.throughput_clients) as made:
        await asyncio.gather(*(loop(c) for c in made))
    if len(errors) > max(3, len(durations) // 100):
        raise WorkloadError(f"{len(errors)} failed runs, e.g. {errors[0]}")
    return {
        "runs_per_second": len(durations) / sizes.throughput_seconds,
        "runs": len(durations),
        "completed": completed,
        "clients": sizes.throughput_clients,
        "errors": len(errors),
        "p50_ms": _ms(percentile(durations, 50)),
        "p99_ms": _ms(percentile(durations, 99)),
    }


# -- 3. streaming -----------------------------------------------------------------------


@dataclass
class _Received:
    count: int = 0
    started: float = 0.0
    first: float = 0.0
    last: float = 0.0
    in_order: bool = True

    def got(self) -> None:
        self.last = time.perf_counter()
        if not self.count:
            self.first = self.last
        self.count += 1

    def figures(self) -> dict[str, float]:
        span = self.last - self.first
        return {
            "first_ms": _ms(self.first - self.started) if self.count else math.nan,
            "per_second": self.count / span if span > 0 else 0.0,
            "end_to_end_per_second": self.count / (self.last - self.started) if self.count else 0.0,
            "received": float(self.count),
        }


async def _stream_custom(client: LangGraphClient, sizes: Sizes) -> _Received:
    got = _Received()
    graph_input = {"count": sizes.stream_events, "pad": sizes.stream_pad, "pace": 1}
    got.started = time.perf_counter()
    async for part in client.runs.stream(None, "emitter", input=graph_input, stream_mode="custom"):
        if part.event == "custom":
            if part.data.get("index") != got.count:
                got.in_order = False
            got.got()
    return got


def _token(data: Any) -> str | None:
    """The text of a messages-tuple event's chunk, if it is one of the fake model's tokens."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        content = data[0].get("content")
        if isinstance(content, str) and content.lstrip().startswith("t"):
            return content
    return None


async def _stream_tokens(client: LangGraphClient, sizes: Sizes) -> _Received:
    got = _Received()
    graph_input: dict[str, Any] = {
        "messages": [{"role": "user", "content": "go"}],
        "tokens": sizes.stream_tokens,
    }
    got.started = time.perf_counter()
    async for part in client.runs.stream(
        None, "tokens", input=graph_input, stream_mode="messages-tuple"
    ):
        if part.event.startswith("messages") and (token := _token(part.data)) is not None:
            if token.strip() != f"t{got.count}":
                got.in_order = False
            got.got()
    return got


async def streaming(url: str, sizes: Sizes) -> dict[str, Any]:
    """One run's custom events and one run's messages-tuple tokens, received by the SDK.

    Repeated `stream_repeats` times each; the figures are the medians. Rates count
    from the first to the last event; `first_ms` is from the request to the first one.
    """
    results: dict[str, list[_Received]] = {"custom": [], "tokens": []}
    expected = {"custom": sizes.stream_events, "tokens": sizes.stream_tokens}
    async with clients(url) as (client,):
        await _stream_custom(client, Sizes(**{**sizes.__dict__, "stream_events": 10}))  # warm
        for _ in range(sizes.stream_repeats):
            results["custom"].append(await _stream_custom(client, sizes))
            results["tokens"].append(await _stream_tokens(client, sizes))
    figures: dict[str, Any] = {}
    for kind, runs in results.items():
        for run in runs:
            if run.count != expected[kind] or not run.in_order:
                raise WorkloadError(
                    f"{kind}: received {run.count}/{expected[kind]} "
                    f"({'in order' if run.in_order else 'OUT OF ORDER'})"
                )
        for name in ("first_ms", "per_second", "end_to_end_per_second"):
            figures[f"{kind}_{name}"] = statistics.median(r.figures()[name] for r in runs)
        figures[f"{kind}_events"] = expected[kind]
    return figures


# -- 4. background ----------------------------------------------------------------------


async def background(url: str, sizes: Sizes) -> dict[str, Any]:
    """`runs.create` on N distinct threads, then `runs.join` on all: runs per second."""
    async with clients(url) as (client,):
        threads = await bounded(
            sizes.background_concurrency,
            [client.threads.create for _ in range(sizes.background_runs)],
        )
        ids = [t["thread_id"] for t in threads]
        started = time.perf_counter()

        def creator(thread_id: str) -> Callable[[], Awaitable[Any]]:
            return lambda: client.runs.create(thread_id, "two_step", input=TWO_STEP_INPUT)

        runs = await bounded(sizes.background_concurrency, [creator(t) for t in ids])
        created = time.perf_counter()

        def joiner(run: Any) -> Callable[[], Awaitable[Any]]:
            return lambda: client.runs.join(run["thread_id"], run["run_id"])

        outputs = await bounded(sizes.background_concurrency, [joiner(r) for r in runs])
        joined = time.perf_counter()
    wrong = [o for o in outputs if _value(o) != TWO_STEP_OUTPUT]
    if wrong:
        raise WorkloadError(f"{len(wrong)} runs did not succeed, e.g. {wrong[0]!r}")
    return {
        "runs_per_second": len(runs) / (joined - started),
        "creates_per_second": len(runs) / (created - started),
        "runs": len(runs),
        "seconds": joined - started,
    }


# -- 5. checkpoints (through the server) ------------------------------------------------


async def checkpoints(url: str, sizes: Sizes) -> dict[str, Any]:
    """N concurrent threaded runs of S supersteps (1 KB each): supersteps per second."""
    rates: list[float] = []
    graph_input = {"steps": sizes.checkpoint_steps, "size": sizes.checkpoint_size}
    async with clients(url) as (client,):
        for _ in range(sizes.checkpoint_rounds):
            threads = [await client.threads.create() for _ in range(sizes.checkpoint_runs)]
            started = time.perf_counter()
            outputs = await asyncio.gather(
                *(client.runs.wait(t["thread_id"], "steps", input=graph_input) for t in threads)
            )
            seconds = time.perf_counter() - started
            bad = [
                o
                for o in outputs
                if not isinstance(o, dict) or o.get("step") != graph_input["steps"]
            ]
            if bad:
                raise WorkloadError(f"{len(bad)} runs did not finish, e.g. {bad[0]!r}")
            rates.append(sizes.checkpoint_runs * sizes.checkpoint_steps / seconds)
    return {
        "supersteps_per_second": statistics.median(rates),
        "rounds": [round(r, 1) for r in rates],
        "runs": sizes.checkpoint_runs,
        "steps": sizes.checkpoint_steps,
    }


# -- 6. history -------------------------------------------------------------------------

# A `steps` run of S supersteps leaves S + 2 checkpoints: the input, the START step, S steps.
_EXTRA_CHECKPOINTS = 2


async def _thread_with(client: LangGraphClient, checkpoints: int) -> tuple[str, float]:
    """A thread holding `checkpoints` checkpoints, built by one looping run; its build rate."""
    thread = await client.threads.create()
    steps = checkpoints - _EXTRA_CHECKPOINTS
    started = time.perf_counter()
    output = await client.runs.wait(
        thread["thread_id"],
        "steps",
        input={"steps": steps, "size": 256},
        config={"recursion_limit": steps + 10},
    )
    seconds = time.perf_counter() - started
    if not isinstance(output, dict) or output.get("step") != steps:
        raise WorkloadError(f"building a {checkpoints}-checkpoint thread: {output!r}")
    return thread["thread_id"], steps / seconds


async def history(url: str, sizes: Sizes) -> dict[str, Any]:
    """`get_history(limit=50)` on a thread of `history_small` and one of `history_large`
    checkpoints, calls alternating between them: p50/p99 of each, in ms."""
    async with clients(url) as (client,):
        small, _ = await _thread_with(client, sizes.history_small)
        large, build_rate = await _thread_with(client, sizes.history_large)
        counted = len(await client.threads.get_history(small, limit=sizes.history_small + 50))
        if counted != sizes.history_small:
            raise WorkloadError(
                f"the small thread has {counted} checkpoints, not {sizes.history_small}"
            )
        samples: dict[str, list[float]] = {"small": [], "large": []}
        threads = (("small", small, sizes.history_small), ("large", large, sizes.history_large))
        for index in range(sizes.history_calls + 5):
            for name, thread_id, count in threads:
                started = time.perf_counter()
                states = await client.threads.get_history(thread_id, limit=sizes.history_limit)
                elapsed = time.perf_counter() - started
                if len(states) != min(sizes.history_limit, count):
                    raise WorkloadError(f"get_history returned {len(states)} states")
                if index >= 5:
                    samples[name].append(elapsed)
    figures: dict[str, Any] = {
        "small_checkpoints": sizes.history_small,
        "large_checkpoints": sizes.history_large,
        "build_supersteps_per_second": build_rate,
    }
    for name, values in samples.items():
        figures[f"{name}_p50_ms"] = _ms(percentile(values, 50))
        figures[f"{name}_p99_ms"] = _ms(percentile(values, 99))
    figures["p99_ratio"] = figures["large_p99_ms"] / figures["small_p99_ms"]
    return figures


# -- 7. store ----------------------------------------------------------------------------


async def store(url: str, sizes: Sizes) -> dict[str, Any]:
    """The Store API through the SDK: `store_items` puts, a get of each, `store_queries`
    semantic searches (the server's store.index: the fake embeddings of
    tests/graphs/embeddings.py), `store_concurrency` clients at once; ops/s and p99."""
    from bench.store import TOPICS, item_value

    root = f"bench{int(time.time() * 1000)}"
    namespaces = [[root, TOPICS[n % len(TOPICS)]] for n in range(sizes.store_items)]
    figures: dict[str, Any] = {"items": sizes.store_items, "queries": sizes.store_queries}
    async with clients(url, sizes.store_concurrency) as made:

        def timed(
            calls: Sequence[Callable[[LangGraphClient], Awaitable[Any]]],
        ) -> Callable[[], Awaitable[tuple[float, list[Any], list[float]]]]:
            async def run() -> tuple[float, list[Any], list[float]]:
                times: list[float] = []

                async def one(n: int) -> Any:
                    started = time.perf_counter()
                    result = await calls[n](made[n % len(made)])
                    times.append(time.perf_counter() - started)
                    return result

                started = time.perf_counter()
                jobs = [lambda n=n: one(n) for n in range(len(calls))]
                results = await bounded(sizes.store_concurrency, jobs)
                return len(calls) / (time.perf_counter() - started), results, times

            return run

        puts = [
            lambda c, n=n: c.store.put_item(namespaces[n], f"item-{n}", item_value(n))
            for n in range(sizes.store_items)
        ]
        gets = [
            lambda c, n=n: c.store.get_item(namespaces[n], f"item-{n}")
            for n in range(sizes.store_items)
        ]
        searches = [
            lambda c, q=q: c.store.search_items(
                [root], query=f"my favourite {TOPICS[q % len(TOPICS)]}", limit=10
            )
            for q in range(sizes.store_queries)
        ]
        warm = [  # connections opened, statements prepared: not counted
            lambda c, n=n: c.store.put_item([f"{root}-warm"], f"k{n}", {"n": n})
            for n in range(4 * sizes.store_concurrency)
        ]
        await timed(warm)()
        for name, calls in (("put", puts), ("get", gets), ("semantic_search", searches)):
            rate, results, times = await timed(calls)()
            if name == "get" and any(r is None for r in results):
                raise WorkloadError("a get found no item")
            if name == "semantic_search" and any(len(r["items"]) != 10 for r in results):
                raise WorkloadError("a semantic search returned fewer than 10 items")
            figures[f"{name}_per_second"] = rate
            figures[f"{name}_p99_ms"] = _ms(percentile(times, 99))
    return figures


WORKLOADS: dict[str, Callable[[str, Sizes], Awaitable[dict[str, Any]]]] = {
    "latency": latency,
    "throughput": throughput,
    "streaming": streaming,
    "background": background,
    "checkpoints": checkpoints,
    "history": history,
    "store": store,
}
