"""The store (long-term memory): put, get, delete and search items; list namespaces.

Shapes and codes as LangGraph Platform's spec and the SDK have them; every request asks
the `store` auth handler for its action first, and uses the namespace it left.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from langgraph.store.base import NOT_PROVIDED, Item
from starlette.responses import Response

from api.auth.authorize import AuthorizeDep
from api.deps import RuntimeDep
from api.responses import JSON
from api.schemas import StoreDelete, StoreNamespaces, StorePut, StoreSearch
from broker.memory import StoreInvalid, check_namespace, conditions
from broker.store_access import StoreAccess

router = APIRouter(prefix="/store", tags=["store"])

# A client asking for semantic search where there is none is told so, not given a listing.
NO_INDEX = "semantic search needs store.index in langgraph.json, which this server has not"


@router.put("/items", status_code=204)
async def put_item(body: StorePut, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    check_namespace("namespace", body.namespace)
    if isinstance(body.index, list) and runtime.store.index is None:
        raise StoreInvalid(f"index: {NO_INDEX}")
    value: dict[str, Any] = {
        "namespace": tuple(body.namespace),
        "key": body.key,
        "value": body.value,
        "index": body.index,
    }
    filter = await authorize("store", "put", value)
    namespace = _namespace(value)
    ttl = NOT_PROVIDED if body.ttl is None else body.ttl
    access = StoreAccess(runtime.store, filter)
    await access.put(namespace, body.key, body.value, body.index, ttl)
    return Response(status_code=204)


@router.get("/items")
async def get_item(
    runtime: RuntimeDep,
    authorize: AuthorizeDep,
    key: str,
    namespace: list[str] = Query(default_factory=list),
    refresh_ttl: bool | None = None,
) -> Response:
    # The SDK sends the namespace as one parameter, its labels joined by ".".
    labels = [label for joined in namespace for label in joined.split(".")]
    check_namespace("namespace", labels)
    value: dict[str, Any] = {"namespace": tuple(labels), "key": key}
    filter = await authorize("store", "get", value)
    item = await StoreAccess(runtime.store, filter).get(_namespace(value), key, refresh_ttl)
    return JSON(_item(item) if item is not None else None)


@router.delete("/items", status_code=204)
async def delete_item(body: StoreDelete, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    check_namespace("namespace", body.namespace)
    value: dict[str, Any] = {"namespace": tuple(body.namespace), "key": body.key}
    filter = await authorize("store", "delete", value)
    await StoreAccess(runtime.store, filter).delete(_namespace(value), body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: StoreSearch, runtime: RuntimeDep, authorize: AuthorizeDep) -> Response:
    prefix = body.namespace_prefix or []
    check_namespace("namespace_prefix", prefix, allow_empty=True)
    conditions("filter", body.filter)  # refused before the handler sees it
    if body.query is not None and runtime.store.index is None:
        raise StoreInvalid(f"query: {NO_INDEX}")
    value: dict[str, Any] = {
        "namespace": tuple(prefix),
        "filter": body.filter,
        "limit": body.limit,
        "offset": body.offset,
        "query": body.query,
    }
    filter = await authorize("store", "search", value)
    items = await StoreAccess(runtime.store, filter).search(
        _namespace(value, "namespace_prefix", allow_empty=True),
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        query=body.query,
        refresh_ttl=body.refresh_ttl,
    )
    return JSON({"items": [_item(item) for item in items]})


@router.post("/namespaces")
async def list_namespaces(
    body: StoreNamespaces, runtime: RuntimeDep, authorize: AuthorizeDep
) -> Response:
    for field, labels in (("prefix", body.prefix), ("suffix", body.suffix)):
        check_namespace(field, [label for label in labels or [] if label != "*"], allow_empty=True)
    value: dict[str, Any] = {
        "namespace": tuple(body.prefix) if body.prefix else None,
        "suffix": tuple(body.suffix) if body.suffix else None,
        "max_depth": body.max_depth,
        "limit": body.limit,
        "offset": body.offset,
    }
    filter = await authorize("store", "list_namespaces", value)
    prefix = value.get("namespace") or ()
    check_namespace("prefix", [label for label in prefix if label != "*"], allow_empty=True)
    found = await StoreAccess(runtime.store, filter).namespaces(
        body.limit,
        body.offset,
        prefix=tuple(prefix) or None,
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth,
    )
    return JSON({"namespaces": [list(namespace) for namespace in found]})


def _namespace(
    value: dict[str, Any], field: str = "namespace", *, allow_empty: bool = False
) -> list[str]:
    """The namespace the auth handler left (it may scope it to its user), checked again."""
    namespace = list(value.get("namespace") or ())
    check_namespace(field, namespace, allow_empty=allow_empty)
    return namespace


def _item(item: Item) -> dict[str, Any]:
    return item.dict()
