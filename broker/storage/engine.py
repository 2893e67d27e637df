"""The async engine: one pool per process, sized by settings, its outages made plain."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from sqlalchemy import Dialect, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
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
        # A pre-ping costs three round trips per checkout; recycling old connections and
        # the free check in `_drop_closed` (a connection the server closed) are enough.
        "pool_recycle": 1800,
        "json_serializer": _json_serializer,
        "json_deserializer": orjson.loads,
        "connect_args": _connect_args(settings),
    }
    options.update(overrides)
    engine = create_async_engine(settings.async_database_url, **options)
    report_outages(engine)
    event.listen(engine.sync_engine, "checkout", _drop_closed)
    return engine


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server closed (pg_terminate_backend, a Postgres restart,
    a failover) is replaced at checkout instead of failing the statement that gets it.

    asyncpg notices the server's goodbye on an idle connection (the event loop reads its
    socket), so this costs no round trip; the pool reconnects the same slot on
    DisconnectionError. A connection cut while in use still fails that statement.
    """
    raw = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(raw, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _connect_args(settings: Settings) -> dict[str, Any]:
    if settings.database_pooler == "transaction":
        return TRANSACTION_POOLER_ARGS
    # A process frozen inside a transaction (SIGSTOP, a VM pause) would hold its locks
    # (a thread's row, the sweeper's turn) for good; past a lease Postgres ends it.
    timeout = _ms(settings.lease_seconds)
    return {"server_settings": {"idle_in_transaction_session_timeout": timeout}}


def _unnamed() -> str:
    return ""


# Behind a transaction pooler the next transaction may run on another server connection,
# where a named statement prepared on this one does not exist (or another client's of the
# same name does). asyncpg with no statement cache sends each statement unnamed, Parse
# with its Bind and Execute (its prepare only describes the types); SQLAlchemy's own
# cache and names are turned off the same way. Statements are still compiled once here
# (driver.py); only Postgres' plan reuse is lost. The session timeout above cannot be
# a startup parameter either (the pooler refuses or drops it): set the pooler's own
# (PgBouncer's `idle_transaction_timeout`) or the role's (docs/production.md).
TRANSACTION_POOLER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unnamed,
}


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
        except Exception as exc:  # a pooler refusing the session setting: not our bug
            if _POOLER_REFUSAL not in str(exc):
                raise
            raise StoreUnavailable(store, _hinted(exc)) from exc

    def on_error(context: ExceptionContext) -> None:
        if context.is_pre_ping or _interrupted(context) or not _lost(context):
            return
        context.is_disconnect = True  # the pool must not hand this connection out again
        raise StoreUnavailable(store, _hinted(context.original_exception))

    event.listen(engine.sync_engine, "do_connect", on_connect)
    event.listen(engine.sync_engine, "handle_error", on_error)


# What PgBouncer answers to the session setting a direct connection sends (see above).
_POOLER_REFUSAL = "unsupported startup parameter"


def _hinted(exc: BaseException) -> BaseException:
    """A pooler's refusal of our startup parameters, with the setting that avoids it."""
    if _POOLER_REFUSAL not in str(exc):
        return exc
    return RuntimeError(
        f"{exc}: DATABASE_URI looks like a transaction pooler (PgBouncer); "
        "set BROKER_DATABASE_POOLER=transaction"
    )


def _interrupted(context: ExceptionContext) -> bool:
    """The statement was cancelled (or the process told to stop), not the store lost.

    SQLAlchemy marks a connection interrupted mid-statement as disconnected, so that the
    pool closes it rather than hand it out in an unknown state (aiosqlite's thread may
    still be running the statement, inside BEGIN IMMEDIATE); it stays so marked. But a
    CancelledError reported as StoreUnavailable is a cancel swallowed: a task that
    retries outages (a run's heartbeat, a worker's side tasks) then never ends, and
    whoever awaits it hangs. It must reach the caller as itself.
    """
    return not isinstance(context.original_exception, Exception)


def _lost(context: ExceptionContext) -> bool:
    """The connection broke under the statement, as the dialect or the driver tells."""
    if context.is_disconnect:
        return True
    original = context.original_exception
    # asyncpg's own exception is the cause of the DBAPI error SQLAlchemy's adapter raised.
    return isinstance(original, CONNECTION_LOST) or isinstance(original.__cause__, CONNECTION_LOST)
