"""What the ledger is asked to do and what it reports back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from broker.models import CancelAction, Cron, MultitaskStrategy, Run, RunStatus, ThreadResult


@dataclass(frozen=True)
class Submit:
    """A run to insert: its row (storage.runspec), the tags its thread remembers, and
    how it treats its thread."""

    row: dict[str, Any]
    tags: dict[str, Any]
    temporary: bool  # a stateless run: a new hidden thread of its own
    strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE
    create_thread: bool = False
    delay: timedelta = timedelta(0)
    thread_metadata: dict[str, Any] = field(default_factory=dict)  # of a thread it creates
    thread_ttl: tuple[str, float] | None = None  # (strategy, minutes) of a thread it creates
    auth: dict[str, Any] = field(default_factory=dict)  # visibility.params of a filter

    def thread_params(self) -> dict[str, Any]:
        """The thread `if_not_exists: create` makes: metadata and ttl (as statements bind
        it: on SQLite `p_ttl_at` is the expiry, set from `p_ttl` when there is one)."""
        strategy, minutes = self.thread_ttl or (None, None)
        ttl = None if minutes is None else timedelta(minutes=minutes)
        return {
            "p_metadata": self.thread_metadata,
            "p_ttl_strategy": strategy,
            "p_ttl_minutes": minutes,
            "p_ttl": ttl,
            "p_ttl_at": None,
        }

    @property
    def rejects(self) -> bool:
        return self.strategy == MultitaskStrategy.REJECT

    @property
    def cancel_action(self) -> CancelAction | None:
        """What the new run does to the runs in flight on its thread."""
        if self.strategy in (MultitaskStrategy.INTERRUPT, MultitaskStrategy.ROLLBACK):
            return CancelAction(self.strategy.value)
        return None


@dataclass
class Cancelled:
    """Runs a change ended at once (their streams end) and running ones to signal; the
    threads' next runs to wake."""

    ended: list[Run] = field(default_factory=list)
    signalled: list[tuple[Run, CancelAction]] = field(default_factory=list)
    wake: list[UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Claimed:
    run: Run
    temporary: bool  # its thread is a stateless run's
    cancel_action: CancelAction | None = None  # asked of an earlier attempt, still owed


@dataclass(frozen=True)
class Finished:
    owned: bool  # False: another attempt took the run over; nothing was written
    wake: UUID | None = None  # the thread's next due run


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery, written to the outbox in the transaction that ends its run."""

    delivery_id: UUID
    run_id: UUID
    thread_id: UUID
    url: str
    payload: dict[str, Any]  # plain JSON

    def params(self) -> dict[str, Any]:
        return {
            "p_hook_id": self.delivery_id,
            "p_hook_run_id": self.run_id,
            "p_hook_thread_id": self.thread_id,
            "p_hook_url": self.url,
            "p_hook_payload": self.payload,
        }


NO_DELIVERY = {
    "p_hook_id": None,
    "p_hook_run_id": None,
    "p_hook_thread_id": None,
    "p_hook_url": None,
    "p_hook_payload": None,
}


def delivery_params(delivery: Delivery | None) -> dict[str, Any]:
    return NO_DELIVERY if delivery is None else delivery.params()


# The delivery of a run that ends with a status (None: it has no webhook to call).
DeliveryFor = Callable[[Run, RunStatus], "Delivery | None"]


@dataclass(frozen=True)
class Failure:
    """How a run the broker gives up on leaves its thread (and the webhook it sends)."""

    result: ThreadResult
    drop_thread: bool
    error: dict[str, Any]
    delivery: Delivery | None = None


class Released(Enum):
    RELEASED = "released"  # pending again
    FAILED = "failed"  # out of attempts: ended in error
    LOST = "lost"  # the attempt no longer owned the run


@dataclass
class Swept:
    retry: list[Run] = field(default_factory=list)
    failed: list[tuple[Run, Failure]] = field(default_factory=list)
    stale: list[UUID] = field(default_factory=list)
    wake: list[UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Recovered:
    orphans: list[Run]  # were running: resumed first
    waiting: list[Run]  # were pending


@dataclass(frozen=True)
class Firing:
    """What one due cron does now: the run to submit (None: none this tick) and its next
    tick (None: no tick is left)."""

    submit: Submit | None
    next_run_date: datetime | None


@dataclass(frozen=True)
class Fired:
    """A run a cron submitted, with what its multitask strategy cancelled."""

    cron: Cron
    run: Run
    cancelled: Cancelled
