"""The Postgres schema; Alembic migrations are generated from and checked against it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    func,
    text,
)
from sqlalchemy import Uuid as _Uuid
from sqlalchemy.dialects.postgresql import JSONB


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Minutes(TypeDecorator[float]):
    """A float whose rows need no column type to read (prebuilt statements, where
    SQLAlchemy's Postgres Float asks for one)."""

    impl = Float
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return lambda value: None if value is None else float(value)


# JSONB on Postgres (indexable, `@>` containment); JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
UUID = _Uuid

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

_EMPTY_OBJECT = text("'{}'")


def _created_at() -> Column[object]:
    return Column(
        "created_at", UtcDateTime(), nullable=False, server_default=func.current_timestamp()
    )


def _updated_at() -> Column[object]:
    return Column(
        "updated_at", UtcDateTime(), nullable=False, server_default=func.current_timestamp()
    )


assistants = Table(
    "assistants",
    metadata,
    Column("assistant_id", UUID(as_uuid=True), primary_key=True),
    Column("graph_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("config", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("context", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("metadata", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("version", Integer, nullable=False, server_default=text("1")),
    _created_at(),
    _updated_at(),
    Index(None, "graph_id"),
)

# Every version an assistant had; `assistants` holds a copy of the current one.
assistant_versions = Table(
    "assistant_versions",
    metadata,
    Column(
        "assistant_id",
        UUID(as_uuid=True),
        ForeignKey("assistants.assistant_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("graph_id", Text, nullable=False),
    Column("config", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("context", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("metadata", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=True),
    _created_at(),
)

threads = Table(
    "threads",
    metadata,
    Column("thread_id", UUID(as_uuid=True), primary_key=True),
    _created_at(),
    _updated_at(),
    Column(
        "state_updated_at", UtcDateTime(), nullable=False, server_default=func.current_timestamp()
    ),
    Column("metadata", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("status", Text, nullable=False, server_default=text("'idle'")),
    Column("config", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("values", Json, nullable=True),
    Column("interrupts", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("error", Json, nullable=True),
    # Stateless runs get a temporary thread that never shows in searches.
    Column("temporary", Boolean, nullable=False, server_default=text("false")),
    # A time-to-live (set by the client, or checkpointer.ttl's default): the retention
    # sweeper (broker/retention.py) deletes or prunes the thread once it expires.
    Column("ttl_strategy", Text, nullable=True),
    Column("ttl_minutes", Minutes(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=True),
    Index(None, "created_at"),
    Index(None, "expires_at"),
    Index(None, "metadata", postgresql_using="gin"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column(
        "thread_id",
        UUID(as_uuid=True),
        ForeignKey("threads.thread_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("assistant_id", UUID(as_uuid=True), nullable=False),
    _created_at(),
    _updated_at(),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("metadata", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("kwargs", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("multitask_strategy", Text, nullable=False, server_default=text("'enqueue'")),
    # Fencing token: bumped on every claim; a worker's writes carry the one it got.
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("lease_until", UtcDateTime(), nullable=True),
    # When the current attempt started: ops see queueing delay as started_at - created_at.
    Column("started_at", UtcDateTime(), nullable=True),
    Column("worker_id", Text, nullable=True),
    # A cancel asked of a running run ('interrupt' or 'rollback'), kept durably so a
    # worker that missed the pub/sub signal still sees it at its next heartbeat.
    Column("cancel_action", Text, nullable=True),
    Index(None, "thread_id", "created_at"),
    Index(None, "status", "created_at"),
    Index(None, "created_at"),  # the newest runs of all, unfiltered (`broker inspect runs`)
)

# Scheduled runs. `next_run_date` is the tick the scheduler fires next (NULL: none is
# left before `end_time`); due crons are found by the (enabled, next_run_date) index.
crons = Table(
    "crons",
    metadata,
    Column("cron_id", UUID(as_uuid=True), primary_key=True),
    # Deleting the assistant or the thread deletes its crons (as LangGraph's server does).
    Column(
        "assistant_id",
        UUID(as_uuid=True),
        ForeignKey("assistants.assistant_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "thread_id",
        UUID(as_uuid=True),
        ForeignKey("threads.thread_id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("schedule", Text, nullable=False),
    Column("timezone", Text, nullable=True),
    Column("end_time", UtcDateTime(), nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("on_run_completed", Text, nullable=True),
    # The run request each firing submits (the API's field names).
    Column("payload", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("metadata", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("user_id", Text, nullable=True),
    # The creator as custom auth described them: each firing's run carries them.
    Column("auth_user", Json, nullable=True),
    Column("next_run_date", UtcDateTime(), nullable=True),
    _created_at(),
    _updated_at(),
    Index(None, "enabled", "next_run_date"),
    Index(None, "thread_id"),
    Index(None, "assistant_id"),
)

# Checkpoints: the typed serialization round-trips exactly; `values` and `metadata`
# are a readable JSONB rendering for ops (`SELECT values FROM checkpoints ...`).
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("thread_id", Text, primary_key=True),
    Column("checkpoint_ns", Text, primary_key=True, server_default=text("''")),
    Column("checkpoint_id", Text, primary_key=True),
    Column("parent_checkpoint_id", Text, nullable=True),
    Column("run_id", Text, nullable=True),
    Column("step", Integer, nullable=True),
    Column("type", Text, nullable=False),
    Column("checkpoint", LargeBinary, nullable=False),
    Column("metadata", Json, nullable=False, server_default=_EMPTY_OBJECT),
    Column("values", Json, nullable=False, server_default=_EMPTY_OBJECT),
    _created_at(),
    Index(None, "run_id"),
)

checkpoint_writes = Table(
    "checkpoint_writes",
    metadata,
    Column("thread_id", Text, primary_key=True),
    Column("checkpoint_ns", Text, primary_key=True, server_default=text("''")),
    Column("checkpoint_id", Text, primary_key=True),
    Column("task_id", Text, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("channel", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("blob", LargeBinary, nullable=False),
    Column("task_path", Text, nullable=False, server_default=text("''")),
)

# Long-term memory (the Store API). A namespace is its labels joined by "." (a label
# may not hold one), so a namespace prefix is a text prefix; `value` is readable JSON.
store_items = Table(
    "store_items",
    metadata,
    Column("prefix", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("value", Json, nullable=False),
    _created_at(),
    _updated_at(),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("ttl_minutes", Minutes(), nullable=True),
    # LIKE 'a.b.%' uses it on Postgres whatever the database's collation.
    Index(None, "prefix", postgresql_ops={"prefix": "text_pattern_ops"}),
    Index(None, "expires_at"),
)

# One embedding per indexed field of an item (the portable path: float32 bytes, unit length).
store_vectors = Table(
    "store_vectors",
    metadata,
    Column("prefix", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("field_path", Text, primary_key=True),
    Column("embedding", LargeBinary, nullable=False),
    ForeignKeyConstraint(
        ["prefix", "key"], ["store_items.prefix", "store_items.key"], ondelete="CASCADE"
    ),
)

# Webhook deliveries (an outbox): a row is written in the transaction that ends its run,
# then sent by whichever worker claims it (broker/webhooks/sender.py). No foreign key:
# a delivery outlives its run (a stateless run's row goes when it ends).
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("delivery_id", UUID(as_uuid=True), primary_key=True),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("thread_id", UUID(as_uuid=True), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", Json, nullable=False),
    # pending (to send, at next_attempt_at) | delivered | failed (gave up, or a 4xx)
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column(
        "next_attempt_at", UtcDateTime(), nullable=False, server_default=func.current_timestamp()
    ),
    Column("last_status", Integer, nullable=True),  # the receiver's HTTP status
    Column("last_error", Text, nullable=True),
    _created_at(),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Index(None, "status", "next_attempt_at"),
    Index(None, "run_id"),
)
