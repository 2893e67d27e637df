"""One Settings object, read from the environment with LangGraph's own names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URI = "redis://127.0.0.1:6379/0"


def async_database_url(uri: str) -> str:
    """The SQLAlchemy async URL for a libpq-style or SQLAlchemy URI."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if uri.startswith(prefix):
            return "postgresql+asyncpg://" + uri[len(prefix) :]
    return uri


class Settings(BaseSettings):
    """Everything a process needs to know; env names match LangGraph deployments."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    database_uri: str = Field(default=DEFAULT_DATABASE_URI, alias="DATABASE_URI")
    redis_uri: str = Field(default=DEFAULT_REDIS_URI, alias="REDIS_URI")
    config: Path | None = Field(default=None, alias="BROKER_CONFIG")
    n_jobs_per_worker: int = Field(default=10, ge=1, alias="N_JOBS_PER_WORKER")
    # A worker that misses renewals for this long loses its claim.
    lease_seconds: float = Field(default=30.0, gt=0, alias="BROKER_LEASE_SECONDS")
    heartbeat_seconds: float = Field(default=5.0, gt=0, alias="BROKER_HEARTBEAT_SECONDS")
    # Each worker refreshes a Redis key of its own this often, with this TTL; a worker
    # whose key expired died, and the sweeper gives its runs to others at once instead
    # of waiting out their leases (broker/liveness.py). The lease remains the backstop.
    liveness_seconds: float = Field(default=0.5, gt=0, alias="BROKER_LIVENESS_SECONDS")
    liveness_ttl_seconds: float = Field(default=3.0, gt=0, alias="BROKER_LIVENESS_TTL_SECONDS")
    max_attempts: int = Field(default=3, ge=1, alias="BROKER_MAX_ATTEMPTS")
    # The sweeper (one at a time across workers) recovers expired leases this often.
    sweep_seconds: float = Field(default=5.0, gt=0, alias="BROKER_SWEEP_SECONDS")
    # A pending run nobody claimed for this long is pushed again (its wake-up was lost).
    requeue_seconds: float = Field(default=15.0, gt=0, alias="BROKER_REQUEUE_SECONDS")
    # On SIGTERM a worker lets runs finish this long, then hands the rest back.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0, alias="BROKER_SHUTDOWN_GRACE")
    db_pool_size: int = Field(default=15, ge=1, alias="BROKER_DB_POOL_SIZE")
    # "transaction": DATABASE_URI is a transaction-pooling proxy (PgBouncer in transaction
    # mode, Supabase's or Neon's pooler), so nothing may outlive one transaction on the
    # server connection: no named prepared statements, no session settings.
    database_pooler: Literal["none", "transaction"] = Field(
        default="none", alias="BROKER_DATABASE_POOLER"
    )
    # Each process keeps the assistants runs name for at most this long (changes evict them
    # at once through Redis; this bounds a missed eviction). 0 reads them every time.
    assistant_cache_seconds: float = Field(
        default=10.0, ge=0, alias="BROKER_ASSISTANT_CACHE_SECONDS"
    )
    # Redis prefix lets several brokers (or test runs) share one Redis safely.
    redis_prefix: str = Field(default="broker", alias="BROKER_REDIS_PREFIX")
    # A resumable run's event log outlives the run by this much, for late reconnects.
    resumable_grace_seconds: int = Field(default=600, ge=1, alias="BROKER_RESUMABLE_GRACE_SECONDS")
    sse_heartbeat_seconds: float = Field(default=5.0, gt=0, alias="BROKER_SSE_HEARTBEAT_SECONDS")
    # What one stream client may fall behind, in bytes of events the API holds for it;
    # past it the stream ends with an `error` event (a resumable run's replays from its log).
    stream_buffer_bytes: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024, alias="BROKER_STREAM_BUFFER_BYTES"
    )
    # A request body larger than this is refused (413) while it is read; 10 MiB holds a
    # long chat history.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1, alias="BROKER_MAX_BODY_BYTES")
    # debug | info | warning | error; debug also shows tracebacks of start-up failures.
    log_level: str = Field(default="info", alias="BROKER_LOG_LEVEL")
    # text, or json (one object a line, for log shippers).
    log_format: str = Field(default="text", alias="BROKER_LOG_FORMAT")
    # Every worker polls for due crons this often (one indexed query when none is due).
    cron_poll_seconds: float = Field(default=1.0, gt=0, alias="BROKER_CRON_POLL_SECONDS")
    # Allows 6-field cron schedules (seconds first): for tests, or who wants them.
    cron_seconds: bool = Field(default=False, alias="BROKER_CRON_SECONDS")

    # Webhooks: each worker's sender polls the outbox this often; a POST times out after
    # BROKER_WEBHOOK_TIMEOUT_SECONDS; 5xx, timeouts and connection errors are retried with
    # exponential backoff (BROKER_WEBHOOK_BACKOFF_SECONDS, doubling) until
    # BROKER_WEBHOOK_MAX_ATTEMPTS, then given up.
    webhook_poll_seconds: float = Field(default=0.5, gt=0, alias="BROKER_WEBHOOK_POLL_SECONDS")
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, alias="BROKER_WEBHOOK_TIMEOUT_SECONDS"
    )
    webhook_max_attempts: int = Field(default=5, ge=1, alias="BROKER_WEBHOOK_MAX_ATTEMPTS")
    webhook_backoff_seconds: float = Field(
        default=1.0, gt=0, alias="BROKER_WEBHOOK_BACKOFF_SECONDS"
    )
    # Delivered and given-up deliveries stay this long (for ops), then the retention
    # sweeper deletes them.
    webhook_retention_days: float = Field(default=7.0, gt=0, alias="BROKER_WEBHOOK_RETENTION_DAYS")
    # Retention: how often expired threads are swept (default: checkpointer.ttl's
    # sweep_interval_minutes, else 5 minutes), and how many per transaction.
    retention_sweep_seconds: float | None = Field(
        default=None, gt=0, alias="BROKER_RETENTION_SWEEP_SECONDS"
    )
    retention_batch: int = Field(default=100, ge=1, alias="BROKER_RETENTION_BATCH")

    @property
    def async_database_url(self) -> str:
        # Not cached: `model_copy(update={"database_uri": …})` copies an instance's
        # cache, and the copy would then connect to the original's database.
        return async_database_url(self.database_uri)


def environment() -> list[tuple[str, str]]:
    """Every variable Settings reads, with its default (for `broker --help`)."""
    return [
        (str(field.alias), "" if field.default is None else str(field.default))
        for field in Settings.model_fields.values()
    ]
