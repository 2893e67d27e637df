"""Every Redis key and channel name the broker uses, and nowhere else.

Each name carries a Redis Cluster hash tag (the part in braces picks the slot): a run's
channel and log share the run id's slot, a thread's channel the thread id's, and the
broker-wide names (queue, delayed set, cancel channel, worker board, liveness) share
the prefix's, since one Lua script moves members from the delayed set onto the queue
and one MGET reads the whole worker board (or every worker's liveness key). On one Redis the braces are just characters.
"""

from __future__ import annotations

from uuid import UUID


class Keys:
    """Names under one prefix, so brokers (and test runs) can share a Redis."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @property
    def queue(self) -> str:
        """LIST of run ids waiting for a worker (LPUSH / BRPOP)."""
        return f"{{{self.prefix}}}:queue"

    @property
    def cancel_channel(self) -> str:
        """Pub/sub channel every worker listens to for cancel requests."""
        return f"{{{self.prefix}}}:cancel"

    @property
    def assistants_channel(self) -> str:
        """Pub/sub channel naming each assistant that changed (broker/assistant_cache.py)."""
        return f"{{{self.prefix}}}:assistants"

    def run_channel(self, run_id: UUID | str) -> str:
        """Pub/sub channel carrying one run's encoded SSE frames."""
        return f"{self.prefix}:run:{{{run_id}}}"

    def thread_channel(self, thread_id: UUID | str) -> str:
        """Pub/sub channel announcing a thread's new runs, and its state edits' values."""
        return f"{self.prefix}:thread:{{{thread_id}}}"

    def run_log(self, run_id: UUID | str) -> str:
        """STREAM of a resumable run's frames (ids "<ms>-<seq>"), kept for a grace period."""
        return f"{self.prefix}:run:{{{run_id}}}:log"

    @property
    def delayed(self) -> str:
        """ZSET of run ids created with after_seconds, scored by the epoch second they are due."""
        return f"{{{self.prefix}}}:delayed"

    @property
    def workers(self) -> str:
        """SET of the ids of workers that published metrics (broker/board.py)."""
        return f"{{{self.prefix}}}:workers"

    @property
    def alive(self) -> str:
        """SET of the ids of workers that announced themselves alive (broker/liveness.py)."""
        return f"{{{self.prefix}}}:alive"

    def worker_alive(self, worker_id: str) -> str:
        """Present while the worker lives: refreshed with a short TTL, gone when it died."""
        return f"{{{self.prefix}}}:worker:{worker_id}:alive"

    @property
    def epoch(self) -> str:
        """Set once and never expiring: its absence tells a worker Redis lost its data."""
        return f"{{{self.prefix}}}:epoch"

    def worker_metrics(self, worker_id: str) -> str:
        """A worker's latest metrics in Prometheus' text format, expiring unless renewed."""
        return f"{{{self.prefix}}}:worker:{worker_id}:metrics"
