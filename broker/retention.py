"""Retention: threads whose time-to-live ran out are swept, in bounded batches.

A thread's ttl comes from the client (`POST /threads`, `PATCH /threads/{id}`) or, for a
thread created without one, from langgraph.json's `checkpointer.ttl.default_ttl`. When it
expires, its strategy says what happens:
- `delete`: the thread goes with everything it owned — runs (a running one is cancelled
  first, through the ledger, as `DELETE /threads/{id}` does), checkpoints and their
  writes, crons (by cascade);
- `keep_latest`: the thread stays with its latest checkpoint per namespace (and that
  checkpoint's pending writes: what `get_state` and the next run read); older history
  goes, and the clock restarts for another ttl.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from langgraph.checkpoint.base import BaseCheckpointSaver

from broker import metrics
from broker.config import ThreadTTLConfig
from broker.errors import NotFound
from broker.messaging import Messaging
from broker.storage.ledger import Ledger
from broker.storage.outbox import OutboxStore
from broker.storage.retention import KEEP_LATEST, RetentionStore
from broker.storage.threads import TTLRequest

log = logging.getLogger(__name__)

DEFAULT_SWEEP_MINUTES = 5.0  # LangGraph's "typically ~5 minutes"
DEFAULT_SWEEP_LIMIT = 1000  # threads per sweep, as LangGraph's sweep_limit
_HOLD = timedelta(minutes=5)  # a thread being deleted is picked again after this


@dataclass(frozen=True)
class RetentionPolicy:
    default_ttl: TTLRequest | None = None  # for threads created without a ttl
    sweep_seconds: float = DEFAULT_SWEEP_MINUTES * 60
    limit: int = DEFAULT_SWEEP_LIMIT  # threads per sweep
    batch: int = 100  # threads per transaction
    deliveries_kept: timedelta = timedelta(days=7)  # settled webhook deliveries

    @classmethod
    def of(
        cls,
        ttl: ThreadTTLConfig | None,
        *,
        sweep_seconds: float | None,
        batch: int,
        deliveries_kept: timedelta = timedelta(days=7),
    ) -> RetentionPolicy:
        """checkpointer.ttl as configured; BROKER_RETENTION_SWEEP_SECONDS overrides its
        sweep interval."""
        ttl = ttl or ThreadTTLConfig()
        default = TTLRequest(ttl.default_ttl, ttl.strategy) if ttl.default_ttl else None
        minutes = ttl.sweep_interval_minutes or DEFAULT_SWEEP_MINUTES
        return cls(
            default_ttl=default,
            sweep_seconds=sweep_seconds if sweep_seconds is not None else minutes * 60,
            limit=ttl.sweep_limit or DEFAULT_SWEEP_LIMIT,
            batch=batch,
            deliveries_kept=deliveries_kept,
        )


@dataclass
class Swept:
    deleted: int = 0  # threads deleted with their runs and checkpoints
    pruned: int = 0  # threads cut down to their latest checkpoint
    deliveries: int = 0  # settled webhook deliveries past BROKER_WEBHOOK_RETENTION_DAYS

    def report(self) -> str:
        parts = []
        if self.deleted:
            parts.append(f"{self.deleted} expired threads deleted with their runs and checkpoints")
        if self.pruned:
            parts.append(f"{self.pruned} expired threads pruned to their latest checkpoint")
        if self.deliveries:
            parts.append(f"{self.deliveries} old webhook deliveries deleted")
        return "; ".join(parts)


@dataclass
class RetentionSweeper:
    store: RetentionStore
    outbox: OutboxStore
    ledger: Ledger
    messaging: Messaging
    checkpointer: BaseCheckpointSaver[str]
    policy: RetentionPolicy
    totals: Swept = field(default_factory=Swept)  # since the process started

    async def sweep(self) -> Swept | None:
        """One sweep of at most `policy.limit` threads; None if another process sweeps."""
        swept = Swept()
        done = 0
        cutoff = await self.store.now()
        while done < self.policy.limit:
            size = min(self.policy.batch, self.policy.limit - done)
            batch = await self.store.next_expired(size, _HOLD, cutoff)
            if batch is None:
                return None if done == 0 else swept
            for thread in (t for t in batch if t.strategy != KEEP_LATEST):
                swept.deleted += await self._delete(thread.thread_id)
            keep = [str(t.thread_id) for t in batch if t.strategy == KEEP_LATEST]
            await self.checkpointer.aprune(keep, strategy="keep_latest")
            swept.pruned += len(keep)
            # Counted per batch: a sweep another process cuts short still counts these.
            metrics.RETENTION_THREADS.labels("pruned").inc(len(keep))
            done += len(batch)
            if len(batch) < size:
                break
        swept.deliveries = await self.outbox.purge(self.policy.deliveries_kept, self.policy.limit)
        self.totals.deleted += swept.deleted
        self.totals.pruned += swept.pruned
        self.totals.deliveries += swept.deliveries
        metrics.RETENTION_DELIVERIES.inc(swept.deliveries)
        return swept

    async def _delete(self, thread_id: UUID) -> int:
        try:
            cancelled = await self.ledger.delete_thread(thread_id)
        except NotFound:  # deleted meanwhile
            return 0
        await self.messaging.cancelled(cancelled)
        metrics.RETENTION_THREADS.labels("deleted").inc()
        return 1
