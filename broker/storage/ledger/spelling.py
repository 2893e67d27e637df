"""How the ledger's statements say the few things Postgres and SQLite say differently.

Every statement is built once per backend with bind parameters, so that Postgres can
run it prebuilt on the driver. Postgres keeps time in the database (one clock for every
process); SQLite (`broker dev`, one process) takes this process' clock as `p_now`, and
an interval `p_x` as the time `p_x_at` (the SQLite transaction supplies both).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ColumnElement, Interval, bindparam, func
from sqlalchemy.dialects.postgresql import JSONB

from broker.storage.tables import UtcDateTime

NOW = "p_now"


@dataclass(frozen=True)
class Spelling:
    postgres: bool

    def now(self) -> ColumnElement[datetime]:
        if self.postgres:
            return func.now()
        return bindparam(NOW, type_=UtcDateTime())

    def later(self, name: str) -> ColumnElement[datetime]:
        """Now plus the interval bound as `name` (a timedelta, maybe negative)."""
        if self.postgres:
            return func.now() + bindparam(name, type_=Interval())
        return bindparam(f"{name}_at", type_=UtcDateTime())

    def merged(self, column: ColumnElement[Any], name: str) -> ColumnElement[Any]:
        """The column's JSON object with the keys of the object bound as `name` set."""
        if self.postgres:
            return column.op("||", return_type=JSONB)(bindparam(name, type_=JSONB))
        return func.json_patch(column, bindparam(name, type_=JSON))


POSTGRES = Spelling(postgres=True)
SQLITE = Spelling(postgres=False)


def sqlite_params(params: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`params` with this process' clock: `p_now`, and `p_x_at` for every interval `p_x`."""
    timed = {f"{k}_at": now + v for k, v in params.items() if isinstance(v, timedelta)}
    return {**params, **timed, NOW: now}
