"""Domain value objects: what a run, a thread and an assistant are."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from broker.options import RunOptions


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        return self in (RunStatus.PENDING, RunStatus.RUNNING)


class ThreadStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class MultitaskStrategy(StrEnum):
    REJECT = "reject"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"
    ENQUEUE = "enqueue"


@dataclass(frozen=True, slots=True)
class Assistant:
    assistant_id: UUID
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ThreadTTL:
    """A thread's time-to-live: when it expires and what sweeping it then does."""

    strategy: str  # "delete" or "keep_latest"
    minutes: float
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: UUID
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime
    metadata: dict[str, Any]
    status: ThreadStatus
    config: dict[str, Any]
    values: dict[str, Any] | None
    interrupts: dict[str, Any]
    error: Any
    temporary: bool = False
    ttl: ThreadTTL | None = None

    @property
    def resting_status(self) -> ThreadStatus:
        """Its status with no run in flight, from what its last run left."""
        if self.error:
            return ThreadStatus.ERROR
        if self.interrupts:
            return ThreadStatus.INTERRUPTED
        return ThreadStatus.IDLE


@dataclass(frozen=True, slots=True)
class Run:
    run_id: UUID
    thread_id: UUID
    assistant_id: UUID
    created_at: datetime
    updated_at: datetime
    status: RunStatus
    metadata: dict[str, Any]
    kwargs: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    attempt: int = 0
    # `kwargs` parsed once, when the run is read; `kwargs` stays as stored (the API's form).
    options: RunOptions = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", RunOptions.parse(self.kwargs))


@dataclass(frozen=True, slots=True)
class Cron:
    """A schedule of runs: each tick of `schedule` (in `timezone`) submits `payload`'s run,
    on `thread_id` or (None) on a new thread of its own."""

    cron_id: UUID
    assistant_id: UUID
    thread_id: UUID | None
    schedule: str
    timezone: str | None
    end_time: datetime | None
    enabled: bool
    on_run_completed: str | None
    payload: dict[str, Any]  # the run request's fields (RunRequest's names)
    metadata: dict[str, Any]
    user_id: str | None
    auth_user: dict[str, Any] | None  # the creator, as custom auth described them
    next_run_date: datetime | None  # the tick fired next; None: no tick is left
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's hold on a run: the attempt number is the fencing token."""

    run: Run
    attempt: int
    temporary: bool
    # A cancel asked while an earlier attempt ran (its signal went to that attempt): this
    # attempt honours it at start instead of running the graph again.
    cancel_action: CancelAction | None = None

    @property
    def options(self) -> RunOptions:
        return self.run.options


@dataclass(slots=True)
class RunOutcome:
    """How an execution ended, as the worker reports it back."""

    status: RunStatus
    output: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A validated run-create body, as the API hands it to the service."""

    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    stream_mode: list[str] = field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: list[str] | str | None = None
    interrupt_after: list[str] | str | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE
    if_not_exists: str = "reject"
    on_completion: str = "delete"
    on_disconnect: str = "continue"
    after_seconds: float | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    durability: str | None = None
    # Request headers that langgraph.json's http.configurable_headers lets into the
    # run's config["configurable"] (over the body's configurable, as LangGraph does).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ThreadResult:
    """What a run (or a state update) leaves on its thread."""

    status: ThreadStatus
    values: Any = None
    interrupts: dict[str, Any] | None = None
    error: Any = None


class CancelAction(StrEnum):
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"
