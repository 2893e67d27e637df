"""The store's tables on SQLite (`broker dev`): one process, so its clock; json_extract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ColumnElement, bindparam, func, literal, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.storage.store.base import StoreTables
from broker.storage.tables import UtcDateTime, store_items


class SqliteStoreTables(StoreTables):
    def _expiry(self, ttl_minutes: float | None) -> datetime | None:
        if ttl_minutes is None:
            return None
        return datetime.now(UTC) + timedelta(minutes=ttl_minutes)

    def _expires(self) -> ColumnElement[Any]:
        return bindparam("expires", type_=UtcDateTime())

    def _at_path(self, path: tuple[str, ...]) -> ColumnElement[Any]:
        return func.json_extract(store_items.c.value, _json_path(path))

    def _literal(self, value: Any) -> ColumnElement[Any]:
        # json_extract of the value itself: numbers, strings, booleans (0/1) and JSON
        # text of objects come out as the same SQL values as the column's.
        return func.json_extract(type_coerce(literal(value, JSON), JSON), "$")

    async def _sweep_turn(self, conn: AsyncConnection) -> bool:
        return True  # one process (`broker dev`), and BEGIN IMMEDIATE serializes writers


def _json_path(path: tuple[str, ...]) -> str:
    quoted = (label.replace("\\", "\\\\").replace('"', '\\"') for label in path)
    return "$" + "".join(f'."{label}"' for label in quoted)
