"""The async engine: one pool per process, sized by settings, its outages made plain."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from sqlalchemy import Dialect, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from broker.errors import Store, StoreUnavailable
from broker.settings import Settings

# What asyncpg raises when the connection or the server is gone (SQLSTATE classes 08, 57,
# and the client-side errors of a connection the server closed under it), and what a
# connect raises when nothing answers (refused, unresolvable, timed out: all OSError).
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
)


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """An asyncpg engine whose JSONB columns are encoded with orjson."""
    options: dict[str, Any] = {
        # No overflow: overflow connections are closed on return, and a new Postgres
        # connection (fork + asyncpg's type introspection) costs milliseconds.
        "pool_size": settings.db_pool_size,
        "max_overflow": 0,
        # The most recently used connection first: its prepared statements have their
        # generic plans already (Postgres plans a statement afresh for its first five
        # executions on each connection); round-robin over the pool after a burst of
        # concurrent reads made puts 3-6x slower per batch until every one was warm.
        "pool_use_lifo": True,
        # A pre-ping costs three round trips per checkout; recycling old connections is enough.
        "pool_recycle": 1800,
        "json_serializer": _json_serializer,
        "json_deserializer": orjson.loads,
        # A process frozen inside a transaction (SIGSTOP, a VM pause) would hold its locks
        # (a thread's row, the sweeper's turn) for good; past a lease Postgres ends it.
        "connect_args": {
            "server_settings": {"idle_in_transaction_session_timeout": _ms(settings.lease_seconds)}
        },
    }
    options.update(overrides)
    engine = create_async_engine(settings.async_database_url, **options)
    report_outages(engine)
    return engine


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


def store_of(dialect: Dialect) -> Store:
    return "Postgres" if dialect.name == "postgresql" else "SQLite"


def report_outages(engine: AsyncEngine) -> None:
    """A connection that cannot be made or was lost raises StoreUnavailable, nothing else.

    `handle_error` sees every failed statement (and drops a lost connection from the
    pool); connecting goes through `do_connect`, since asyncpg's refusals (OSError) are
    not DBAPI errors and so never reach `handle_error`.
    """
    store = store_of(engine.dialect)

    def on_connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        refused: tuple[type[BaseException], ...] = (
            *CONNECTION_LOST,
            dialect.loaded_dbapi.OperationalError,  # SQLite: the file cannot be opened
        )
        try:
            return dialect.connect(*cargs, **cparams)
        except refused as exc:
            raise StoreUnavailable(store, exc) from exc

    def on_error(context: ExceptionContext) -> None:
        if context.is_pre_ping or not _lost(context):
            return
        context.is_disconnect = True  # the pool must not hand this connection out again
        raise StoreUnavailable(store, context.original_exception)

    event.listen(engine.sync_engine, "do_connect", on_connect)
    event.listen(engine.sync_engine, "handle_error", on_error)


def _lost(context: ExceptionContext) -> bool:
    """The connection broke under the statement, as the dialect or the driver tells."""
    if context.is_disconnect:
        return True
    original = context.original_exception
    # asyncpg's own exception is the cause of the DBAPI error SQLAlchemy's adapter raised.
    return isinstance(original, CONNECTION_LOST) or isinstance(original.__cause__, CONNECTION_LOST)
