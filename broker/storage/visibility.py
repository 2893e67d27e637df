"""What a custom-auth filter lets a request see, as one JSON containment test.

An `@auth.on` handler may return a filter on a resource's metadata (LangGraph's
FilterType): `{"k": v}` or `{"k": {"$eq": v}}` (the value is v) and `{"k": {"$contains":
v}}` or `{"k": {"$contains": [v, w]}}` (the value is a list holding them). Every form is
one JSON document the metadata must contain (Postgres' `@>`), so the condition is a
single bind parameter (`p_auth`, `{}` when there is no filter): the statements that
carry it stay prebuilt. SQLite gets the same operator as a function (`storage/sqlite.py`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, ColumnElement, bindparam, func
from sqlalchemy.dialects.postgresql import JSONB

AUTH = "p_auth"
SQLITE_FUNCTION = "broker_json_contains"

Filter = dict[str, Any]


class InvalidFilter(ValueError):
    """An auth handler returned a filter this server cannot apply (its bug, not the client's)."""


def containment(filter: Filter | None) -> dict[str, Any]:
    """The document the metadata must contain for `filter` to match (`{}`: everything)."""
    document: dict[str, Any] = {}
    for key, condition in (filter or {}).items():
        document[key] = _required(key, condition)
    return document


def _required(key: str, condition: Any) -> Any:
    if not isinstance(condition, dict):
        return condition
    if set(condition) == {"$eq"}:
        return condition["$eq"]
    if set(condition) == {"$contains"}:
        wanted = condition["$contains"]
        return list(wanted) if isinstance(wanted, list | tuple) else [wanted]
    raise InvalidFilter(
        f"auth filter on '{key}': expected a value, {{'$eq': v}} or {{'$contains': v}}, "
        f"got {condition!r}"
    )


def visible(
    postgres: bool, column: ColumnElement[Any], filter: Filter | None = None
) -> ColumnElement[bool]:
    """`column` (a metadata JSON object) contains the document bound as `p_auth`: the
    one `filter` asks for, or what a prebuilt statement is given (`params`)."""
    document = containment(filter)
    if postgres:
        return column.op("@>", return_type=Boolean)(bindparam(AUTH, document, type_=JSONB))
    auth = bindparam(AUTH, document, type_=JSON)
    return func.coalesce(func.broker_json_contains(column, auth), 0) == 1


def params(filter: Filter | None) -> dict[str, Any]:
    """The bind parameter of `visible` for `filter`."""
    return {AUTH: containment(filter)}


def contains(outer: Any, inner: Any) -> bool:
    """Postgres' jsonb `@>` between objects: objects by key, arrays by an equal item for
    each item, scalars equal (1 and 1.0 too)."""
    if isinstance(inner, dict):
        return isinstance(outer, dict) and all(
            k in outer and contains(outer[k], v) for k, v in inner.items()
        )
    if isinstance(inner, list):
        return isinstance(outer, list) and all(any(contains(o, i) for o in outer) for i in inner)
    if isinstance(outer, list | dict):
        return False
    return (type(outer) is type(inner) and outer == inner) or _same_number(outer, inner)


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )
