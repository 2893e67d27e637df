"""Every metric the broker counts, in one module (names and meanings: docs/production.md).

Two kinds, both Prometheus:

- **Counted where it happens** (below, on `WORKER` or `API`): a worker's counters and
  histograms live in its own process, which has no HTTP server; every few seconds it
  publishes its `WORKER` registry, rendered, to the worker board (Redis with a TTL, or
  in-process for `broker dev`). The API's `/metrics` reads the board and adds a `worker`
  label to each series, so one scrape sees every worker, and a dead worker's series go
  when its entry expires.
- **Read at scrape time** (`broker/scrape.py`): what the database and Redis say now (runs
  pending and running, queue depth, oldest waiting run, webhook deliveries pending, workers
  alive, store health).

To add one: define it here on the registry of the process that counts it, with a
`broker_` name and a unit suffix (`_seconds`, `_total` is added to counters), count it
where it happens (`metrics.X.inc()`), and add a row to docs/production.md's table. A
figure that is a query is a function in broker/scrape.py instead.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# `_created` series double every counter for a value nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Queueing is milliseconds when workers keep up and minutes when they do not.
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# Runs of LLM graphs take seconds to many minutes.
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# A webhook POST is milliseconds on a healthy receiver, up to the timeout (10 s) on a sick one.
_POST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# -- worker processes (published to the board) ------------------------------------------

WORKER = CollectorRegistry(auto_describe=True)

RUNS_CLAIMED = Counter(
    "broker_runs_claimed", "Runs a worker claimed (each attempt counts)", registry=WORKER
)
RUNS_FINISHED = Counter(
    "broker_runs_finished",
    "Runs a worker ended, by final status (success, error, interrupted, timeout)",
    ["status"],
    registry=WORKER,
)
RUNS_HANDED_BACK = Counter(
    "broker_runs_handed_back",
    "Attempts a worker gave up without ending the run: handoff (shutdown), retry (a store "
    "was away), lost (another attempt took the lease)",
    ["reason"],
    registry=WORKER,
)
SWEEPER_RECOVERED = Counter(
    "broker_sweeper_recovered_runs",
    "Runs the sweeper recovered: retried (lease expired), failed (past max attempts), "
    "requeued (pending, its wake-up lost)",
    ["outcome"],
    registry=WORKER,
)
EVENTS_PUBLISHED = Counter(
    "broker_events_published", "Stream frames workers published for their runs", registry=WORKER
)
QUEUE_WAIT = Histogram(
    "broker_run_queue_wait_seconds",
    "From a run's creation (or the time it was due) to a worker claiming it",
    buckets=_WAIT_BUCKETS,
    registry=WORKER,
)
RUN_DURATION = Histogram(
    "broker_run_duration_seconds",
    "From claim to end of the attempts that ended their run, by final status",
    ["status"],
    buckets=_RUN_BUCKETS,
    registry=WORKER,
)
WEBHOOK_DELIVERIES = Counter(
    "broker_webhook_deliveries",
    "Webhook POSTs by outcome: delivered (2xx), retried (5xx, timeout, connection error; "
    "another attempt is scheduled), failed (a 4xx, or past max attempts: given up)",
    ["outcome"],
    registry=WORKER,
)
WEBHOOK_POST_DURATION = Histogram(
    "broker_webhook_post_duration_seconds",
    "How long each webhook POST took, whatever its outcome (errors and timeouts included)",
    buckets=_POST_BUCKETS,
    registry=WORKER,
)
RETENTION_THREADS = Counter(
    "broker_retention_threads_swept",
    "Expired threads the retention sweep handled: deleted, or pruned (keep_latest)",
    ["action"],
    registry=WORKER,
)
RETENTION_DELIVERIES = Counter(
    "broker_retention_webhook_deliveries_purged",
    "Settled webhook deliveries the retention sweep deleted (past BROKER_WEBHOOK_RETENTION_DAYS)",
    registry=WORKER,
)
# Every outcome shows from the start (at 0), so rate() and alerts see a series before
# the first failure.
for _label in ("delivered", "retried", "failed"):
    WEBHOOK_DELIVERIES.labels(_label)
for _label in ("deleted", "pruned"):
    RETENTION_THREADS.labels(_label)
SLOTS = Gauge("broker_worker_slots", "Runs a worker may execute at once", registry=WORKER)
SLOTS_BUSY = Gauge("broker_worker_slots_busy", "Runs a worker is executing now", registry=WORKER)

# -- API processes (served by each) -------------------------------------------------------

API = CollectorRegistry(auto_describe=True)

STREAMS_OPEN = Gauge(
    "broker_api_streams_open",
    "Run streams (stream, join) this API process is relaying now",
    registry=API,
)
MESSAGES_RELAYED = Counter(
    "broker_api_messages_relayed",
    "Event messages (a frame or a worker's batch of frames) relayed to stream clients",
    registry=API,
)
SLOW_READERS = Counter(
    "broker_api_slow_readers",
    "Streams whose client fell behind BROKER_STREAM_BUFFER_BYTES: dropped with an error "
    "event, or (resumable runs) switched to reading the run's log",
    ["outcome"],
    registry=API,
)
for _outcome in ("dropped", "caught_up"):  # a series from the start, for alerts
    SLOW_READERS.labels(_outcome)


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(registry)
