"""The async engine for one SQLite file (`broker dev`): WAL, and writers that queue up.

Every transaction starts with BEGIN IMMEDIATE, taking the write lock up front: a
deferred transaction that reads and then writes fails with SQLITE_BUSY(_SNAPSHOT)
when another writer got in between, which busy_timeout cannot wait out. WAL keeps
readers outside transactions off the writer's back; busy_timeout makes the others wait.

A statement cancelled midway (a task cancelled, a timeout) is interrupted and its
cursor closed before SQLAlchemy drops the connection (`_on_cancelled`): otherwise the
lock outlives the connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import await_

from broker.storage import visibility
from broker.storage.engine import report_outages

_PRAGMAS = (
    "PRAGMA busy_timeout=10000",  # first, so that the pragmas below wait for a lock too
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable at checkpoints of the WAL; safe from corruption
    "PRAGMA foreign_keys=ON",
)


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_sqlite_engine(path: Path) -> AsyncEngine:
    """An aiosqlite engine on `path` whose transactions each hold SQLite's write lock."""
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}",
        json_serializer=_json_serializer,
        json_deserializer=orjson.loads,
    )
    event.listen(engine.sync_engine, "connect", _on_connect)
    event.listen(engine.sync_engine, "begin", _on_begin)
    event.listen(engine.sync_engine, "handle_error", _on_cancelled)
    report_outages(engine)
    return engine


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own BEGIN (deferred, and only before DML) is replaced by _on_begin's.
    dbapi_connection.isolation_level = None
    dbapi_connection.create_function(
        visibility.SQLITE_FUNCTION, 2, _json_contains, deterministic=True
    )
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _json_contains(outer: str | None, inner: str | None) -> int:
    """Postgres' `@>` for auth filters (`storage/visibility.py`), on JSON text."""
    if inner is None:
        return 1
    if outer is None:
        return 0
    return int(visibility.contains(orjson.loads(outer), orjson.loads(inner)))


def _on_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _on_cancelled(context: ExceptionContext) -> None:
    """Stop a cancelled statement and finalize it, so that closing the connection frees
    the write lock.

    SQLAlchemy closes a connection whose statement was cancelled without closing the
    statement's cursor, which the CancelledError's traceback keeps alive until the next
    gc. sqlite3 closes with sqlite3_close_v2: while a statement of the connection is
    unfinalized the connection lingers, its transaction neither rolled back nor its lock
    released, and every other writer fails with `database is locked` past busy_timeout.
    Closing the cursor (on aiosqlite's thread, after the statement) lets the close
    finalize the statement; interrupting it first (thread-safe) spares waiting it out.
    """
    execution = context.execution_context
    if isinstance(context.original_exception, Exception) or execution is None:
        return  # not a cancel, or not a statement (a commit's own statement is finalized)
    connection = context.connection
    pooled = None if connection is None or connection.invalidated else connection.connection
    try:
        if pooled is not None and pooled.driver_connection is not None:
            await_(pooled.driver_connection.interrupt())  # aiosqlite's: not via its thread
        execution.cursor.close()
    except (ValueError, sqlite3.Error):  # the connection is gone already: nothing to free
        pass
