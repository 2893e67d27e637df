"""The few places where Postgres and SQLite (the `broker dev` store) differ.

Postgres keeps time in the database (one clock for every process); SQLite is used by
a single process, whose clock is the only one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, ColumnElement, Table, and_, func, literal, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert


def is_postgres(dialect: Dialect) -> bool:
    return dialect.name == "postgresql"


def insert(dialect: Dialect, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT in this dialect."""
    made: Insert = postgresql.insert(table) if is_postgres(dialect) else sqlite.insert(table)
    return made


def now(dialect: Dialect) -> ColumnElement[datetime]:
    if is_postgres(dialect):
        return func.now()
    return literal(datetime.now(UTC))


def later(dialect: Dialect, delta: timedelta) -> ColumnElement[datetime]:
    if is_postgres(dialect):
        return func.now() + literal(delta)
    return literal(datetime.now(UTC) + delta)


def json_merge(
    dialect: Dialect, column: ColumnElement[Any], value: dict[str, Any]
) -> ColumnElement[Any]:
    """The column's JSON object with `value`'s keys set (shallow merge)."""
    if is_postgres(dialect):
        return column.op("||", return_type=JSONB)(type_coerce(value, JSONB))
    return func.json_patch(column, type_coerce(value, JSON))


def json_contains(
    dialect: Dialect, column: ColumnElement[Any], value: dict[str, Any]
) -> ColumnElement[bool]:
    """The column's JSON object holds every key of `value` with an equal value."""
    if is_postgres(dialect):
        return column.op("@>", return_type=Boolean)(type_coerce(value, JSONB))
    return and_(
        *(
            func.json_extract(column, f'$."{key}"')
            == func.json_extract(type_coerce(item, JSON), "$")
            for key, item in value.items()
        )
    )
