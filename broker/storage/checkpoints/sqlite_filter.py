"""Metadata filters on SQLite: JSONB's containment (`metadata @> filter`) in json_each.

json_each rather than json_extract paths, which cannot address every key, and which
turn true into 1 and JSON null into a missing key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, TableValuedAlias, and_, case, exists, func


def has_entries(
    document: ColumnElement[Any], expected: Mapping[str, Any]
) -> list[ColumnElement[bool]]:
    """The JSON object `document` has each key of `expected` with a value containing it."""
    return [_some_element(document, item, key=key) for key, item in expected.items()]


def _some_element(
    document: ColumnElement[Any], expected: Any, key: str | None = None
) -> ColumnElement[bool]:
    """Some element of the JSON `document` (the one under `key`, if given) contains `expected`."""
    element = func.json_each(document).table_valued("key", "type", "atom", "value")
    match = _contains(element, expected)
    return exists().where(match if key is None else and_(element.c.key == key, match))


def _contains(element: TableValuedAlias, expected: Any) -> ColumnElement[bool]:
    """The json_each `element` contains `expected`, as JSONB's `@>` would decide."""
    kind, atom = element.c.type, element.c.atom
    if isinstance(expected, dict):
        return and_(kind == "object", *has_entries(_nested(element), expected))
    if isinstance(expected, list):
        items = (_some_element(_nested(element), item) for item in expected)
        return and_(kind == "array", *items)
    if expected is None:
        return kind == "null"
    if isinstance(expected, bool):  # before numbers: json_each's atom of true is 1
        return kind == ("true" if expected else "false")
    if isinstance(expected, str):
        return and_(kind == "text", atom == expected)
    return and_(kind.in_(("integer", "real")), atom == expected)


def _nested(element: TableValuedAlias) -> ColumnElement[Any]:
    """The element's JSON if it is an object or an array, else NULL (no elements).

    The value of a string element is its bare text, which json_each rejects as malformed;
    SQLite does not promise to test the element's type first.
    """
    return case((element.c.type.in_(("object", "array")), element.c.value))
