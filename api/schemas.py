"""Request bodies, validated at the edge; the service sees plain dataclasses."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api import headers as configurable_headers
from broker.crons import CronChanges, CronSpec
from broker.models import MultitaskStrategy, RunRequest
from broker.state import StateEdit
from broker.storage.assistants import AssistantSpec
from broker.storage.threads import TTLRequest

# The classic run endpoints' modes; `tools` and `lifecycle` (v2 endpoints only) are refused.
STREAM_MODES = {
    "values",
    "updates",
    "messages-tuple",
    "messages",
    "custom",
    "debug",
    "tasks",
    "checkpoints",
    "events",
}


# Pages start within the first 2^31 rows; a run may wait at most a year before it starts.
MAX_OFFSET = 2**31 - 1
MAX_AFTER_SECONDS = 365 * 24 * 3600


def check_modes(modes: list[str], allowed: Collection[str] = STREAM_MODES) -> list[str]:
    """The modes, if each is one of `allowed` (by default those the classic run endpoints
    stream; a thread's stream has its own)."""
    for mode in modes:
        if mode not in allowed:
            raise ValueError(f"unknown stream mode '{mode}'; use one of {sorted(allowed)}")
    return modes


# Numbers and flags are taken as JSON gives them: `false` is not an offset, nor "1" a flag.
Limit = Annotated[int, Field(ge=1, le=1000, strict=True)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
Seconds = Annotated[float, Field(ge=0, le=MAX_AFTER_SECONDS, strict=True)]


class Body(BaseModel):
    # SDKs add fields over time; unknown ones are ignored, as the reference server does.
    model_config = ConfigDict(extra="ignore")


MAX_TTL_MINUTES = 100 * 365 * 24 * 60


class ThreadTTLBody(Body):
    # At most a century: an expiry must be a time both backends can store.
    ttl: float = Field(gt=0, le=MAX_TTL_MINUTES, description="minutes until the thread is swept")
    strategy: Literal["delete", "keep_latest"] = "delete"

    def to_request(self) -> TTLRequest:
        return TTLRequest(self.ttl, self.strategy)


class SuperstepUpdate(Body):
    values: dict[str, Any] | list[Any] | None = None
    command: dict[str, Any] | None = None
    as_node: str

    def to_update(self) -> StateEdit:
        return StateEdit(self.values, self.command, self.as_node)


class Superstep(Body):
    updates: list[SuperstepUpdate] = Field(min_length=1)


class ThreadCreate(Body):
    thread_id: UUID | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: ThreadTTLBody | None = None
    supersteps: list[Superstep] | None = None

    def steps(self) -> list[list[StateEdit]]:
        return [[u.to_update() for u in step.updates] for step in self.supersteps or []]


class ThreadPrune(Body):
    thread_ids: list[UUID]
    strategy: Literal["delete", "keep_latest"] = "delete"


class ThreadSearch(Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[UUID] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[str] | None = None


AssistantField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]


class AssistantCreate(Body):
    graph_id: str
    assistant_id: UUID | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str = "Untitled"
    description: str | None = None

    def spec(self) -> AssistantSpec:
        return AssistantSpec(
            graph_id=self.graph_id,
            config=self.config,
            context=self.context,
            metadata=self.metadata,
            name=self.name,
            description=self.description,
        )


class AssistantPatch(Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> AssistantPatch:
        # A field sent as null is refused rather than guessed at; a description may be
        # cleared.
        for name in self.model_fields_set - {"description", "metadata"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may be left out, but not null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, which replace the current ones (metadata is merged apart)."""
        return {f: getattr(self, f) for f in self.model_fields_set if f != "metadata"}


class AssistantFilter(Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None


class AssistantSearch(AssistantFilter):
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "created_at", "updated_at", "name", "graph_id"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[AssistantField] | None = None


class AssistantVersions(Body):
    metadata: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0


class AssistantVersionChange(Body):
    version: int | None = None


class HistoryQuery(Body):
    limit: Limit = 10
    before: dict[str, Any] | str | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


class ThreadPatch(Body):
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl: ThreadTTLBody | None = None


class ThreadCount(Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None


class StateUpdate(Body):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint_id: UUID | None = None
    checkpoint: dict[str, Any] | None = None

    def target(self) -> dict[str, Any] | None:
        """The checkpoint to update from, if the caller named one."""
        checkpoint = dict(self.checkpoint or {})
        if self.checkpoint_id:
            checkpoint["checkpoint_id"] = str(self.checkpoint_id)
        return checkpoint or None


class StateAt(Body):
    checkpoint: dict[str, Any] = Field(default_factory=dict)
    subgraphs: Flag = False


class BulkCancel(Body):
    thread_id: UUID | None = None
    run_ids: list[UUID] | None = None
    status: Literal["pending", "running", "all"] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> BulkCancel:
        by_ids = self.thread_id is not None or self.run_ids is not None
        if by_ids == (self.status is not None):
            raise ValueError("give either thread_id and run_ids, or status, not both")
        if by_ids and not self.run_ids:
            raise ValueError("run_ids must list the runs to cancel")
        return self


class RunCreate(Body):
    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: list[str] | str | None = None
    stream_subgraphs: Flag = False
    stream_resumable: Flag = False
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    checkpoint_id: UUID | None = None
    checkpoint: dict[str, Any] | None = None
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE
    if_not_exists: Literal["reject", "create"] = "reject"
    on_completion: Literal["delete", "keep"] = "delete"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    after_seconds: Seconds | None = None
    webhook: str | None = None  # checked by the service against langgraph.json's policy
    feedback_keys: list[str] | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: Flag | None = None

    @field_validator("stream_mode")
    @classmethod
    def _modes(cls, value: list[str] | str | None) -> list[str]:
        modes = [value] if isinstance(value, str) else list(value or [])
        return check_modes(modes) or ["values"]

    def to_request(self) -> RunRequest:
        durability = self.durability
        if durability is None and self.checkpoint_during is not None:
            durability = "async" if self.checkpoint_during else "exit"
        return RunRequest(
            assistant_id=self.assistant_id,
            input=self.input,
            command=self.command,
            config=self.config,
            context=self.context,
            metadata=self.metadata,
            stream_mode=list(self.stream_mode or ["values"]),
            stream_subgraphs=self.stream_subgraphs,
            stream_resumable=self.stream_resumable,
            interrupt_before=self.interrupt_before,
            interrupt_after=self.interrupt_after,
            checkpoint_id=str(self.checkpoint_id) if self.checkpoint_id else None,
            checkpoint=self.checkpoint,
            multitask_strategy=self.multitask_strategy,
            if_not_exists=self.if_not_exists,
            on_completion=self.on_completion,
            on_disconnect=self.on_disconnect,
            after_seconds=self.after_seconds,
            webhook=self.webhook,
            feedback_keys=self.feedback_keys,
            durability=durability,
            headers=configurable_headers.carried(),
        )


# -- crons ------------------------------------------------------------------------------

Nodes = list[str] | Literal["*"] | None


class CronRun(Body):
    """The run each firing submits."""

    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None  # checked by the cron service against the webhooks policy
    interrupt_before: Nodes = None
    interrupt_after: Nodes = None
    stream_mode: list[str] | str | None = None
    stream_subgraphs: Flag | None = None
    stream_resumable: Flag | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: Flag | None = None

    @field_validator("stream_mode")
    @classmethod
    def _modes(cls, value: list[str] | str | None) -> list[str] | None:
        if value is None:
            return None
        return check_modes([value] if isinstance(value, str) else list(value))

    def run_fields(self) -> dict[str, Any]:
        """The run's fields given (RunRequest's names), as a cron stores them."""
        fields = self.model_dump(
            include=set(CronRun.model_fields) - {"checkpoint_during"}, exclude_none=True
        )
        if self.durability is None and self.checkpoint_during is not None:
            fields["durability"] = "async" if self.checkpoint_during else "exit"
        return fields


class ThreadCronCreate(CronRun):
    assistant_id: str
    schedule: str
    timezone: str | None = None
    end_time: datetime | None = None
    enabled: Flag = True
    multitask_strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE

    def spec(self, on_run_completed: str | None = None) -> CronSpec:
        payload = self.run_fields() | {"multitask_strategy": self.multitask_strategy.value}
        return CronSpec(
            assistant_id=self.assistant_id,
            schedule=self.schedule,
            payload=payload,
            metadata=dict(self.metadata or {}),
            timezone=self.timezone,
            end_time=self.end_time,
            enabled=self.enabled,
            on_run_completed=on_run_completed,
        )


class CronCreate(ThreadCronCreate):
    on_run_completed: Literal["delete", "keep"] = "delete"

    def spec(self, on_run_completed: str | None = None) -> CronSpec:
        return super().spec(on_run_completed or self.on_run_completed)


class CronPatch(CronRun):
    schedule: str | None = None
    timezone: str | None = None
    end_time: datetime | None = None
    enabled: Flag | None = None
    on_run_completed: Literal["delete", "keep"] | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> CronPatch:
        for name in self.model_fields_set - {"end_time"}:  # only end_time may be cleared
            if getattr(self, name) is None:
                raise ValueError(f"{name} may be left out, but not null")
        return self

    def changes(self) -> CronChanges:
        own = {"schedule", "timezone", "end_time", "enabled", "on_run_completed"}
        given = {f: getattr(self, f) for f in own & self.model_fields_set}
        run = self.run_fields()
        run.pop("metadata", None)  # merged, into the cron's metadata and its runs'
        return CronChanges(given, run, self.metadata)


CronSortField = Literal[
    "cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at", "updated_at"
]
CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "user_id",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
]


class CronCount(Body):
    assistant_id: str | None = None
    thread_id: UUID | None = None
    metadata: dict[str, Any] | None = None


class CronSearch(CronCount):
    enabled: Flag | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: CronSortField = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[CronField] | None = None


# -- the store (/store/*) ------------------------------------------------------------

Labels = list[Annotated[str, Field(strict=True)]]
Depth = Annotated[int, Field(ge=1, le=1000, strict=True)]


class StorePut(Body):
    namespace: Labels
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: float | None = Field(
        default=None, gt=0, le=MAX_TTL_MINUTES, description="minutes; null: the default ttl"
    )


class StoreDelete(Body):
    namespace: Labels = Field(default_factory=list)
    key: str


class StoreSearch(Body):
    namespace_prefix: Labels | None = None
    filter: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0
    query: str | None = None
    refresh_ttl: Flag | None = None


class StoreNamespaces(Body):
    prefix: Labels | None = None
    suffix: Labels | None = None
    max_depth: Depth | None = None
    limit: Limit = 100
    offset: Offset = 0
