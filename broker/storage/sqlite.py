"""The async engine for one SQLite file (`broker dev`): WAL, and writers that queue up.

Every transaction starts with BEGIN IMMEDIATE, taking the write lock up front: a
deferred transaction that reads and then writes fails with SQLITE_BUSY(_SNAPSHOT)
when another writer got in between, which busy_timeout cannot wait out. WAL keeps
readers outside transactions off the writer's back; busy_timeout makes the others wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
