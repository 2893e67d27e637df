"""The HTTP side of the store under custom auth: what an `@auth.on.store` filter lets a
request see and change.

A store handler may rewrite `value["namespace"]` (the route uses what it left) and may
return a filter. As LangGraph's JS server does, a filter is matched against the item's
value with its `namespace` (a list) and `key` added: a hidden item reads as missing, a
put or delete of one is 404, a put whose new value would not pass is 403. Searches and
namespace listings scan the matches page by page, keeping what passes, up to a bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.store.base import NOT_PROVIDED, Item, NotProvided, SearchItem

from broker.errors import BadRequest, BrokerError, NotFound
from broker.memory import Store
from broker.storage.visibility import Filter, containment, contains

SCAN_PAGE = 1000
SCAN_MAX = 10_000


class NotAuthorized(BrokerError):
    """Not authorized: the item would not pass the auth handler's filter."""

    status_code = 403


class ScanLimit(BadRequest):
    """Authenticated store query exceeded the maximum scan; narrow the namespace or filter."""


class StoreAccess:
    def __init__(self, store: Store, filter: Filter | None) -> None:
        self.store = store
        self.required = containment(filter) if filter else None

    async def get(self, namespace: Sequence[str], key: str, refresh: bool | None) -> Item | None:
        item = await self.store.aget(tuple(namespace), key, refresh_ttl=refresh)
        return item if item is None or self._passes_item(item) else None

    async def put(
        self,
        namespace: Sequence[str],
        key: str,
        value: dict[str, Any],
        index: Any,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        await self._may_change(namespace, key)
        if not self._passes(namespace, key, value):
            raise NotAuthorized()
        await self.store.aput(tuple(namespace), key, value, index=index, ttl=ttl)

    async def delete(self, namespace: Sequence[str], key: str) -> None:
        await self._may_change(namespace, key)
        await self.store.adelete(tuple(namespace), key)

    async def search(self, prefix: Sequence[str], **options: Any) -> list[SearchItem]:
        limit, offset = options.pop("limit"), options.pop("offset")
        if self.required is None:
            return await self.store.asearch(tuple(prefix), limit=limit, offset=offset, **options)
        kept: list[SearchItem] = []
        scanned = 0
        while len(kept) < offset + limit:
            if scanned >= SCAN_MAX:
                raise ScanLimit()
            page = await self.store.asearch(
                tuple(prefix), limit=SCAN_PAGE, offset=scanned, **options
            )
            scanned += len(page)
            kept.extend(item for item in page if self._passes_item(item))
            if len(page) < SCAN_PAGE:
                break
        return kept[offset : offset + limit]

    async def namespaces(self, limit: int, offset: int, **options: Any) -> list[tuple[str, ...]]:
        if self.required is None:
            return await self.store.alist_namespaces(limit=limit, offset=offset, **options)
        every = await self.store.alist_namespaces(limit=SCAN_MAX + 1, offset=0, **options)
        if len(every) > SCAN_MAX:
            raise ScanLimit()
        kept = [namespace for namespace in every if self._passes(namespace)]
        return kept[offset : offset + limit]

    async def _may_change(self, namespace: Sequence[str], key: str) -> None:
        if self.required is None:
            return
        existing = await self.store.aget(tuple(namespace), key, refresh_ttl=False)
        if existing is not None and not self._passes_item(existing):
            raise NotFound("Item not found")

    def _passes_item(self, item: Item) -> bool:
        return self._passes(item.namespace, item.key, item.value)

    def _passes(
        self, namespace: Sequence[str], key: str | None = None, value: dict[str, Any] | None = None
    ) -> bool:
        if self.required is None:
            return True
        document = {**(value or {}), "namespace": list(namespace)}
        if key is not None:
            document["key"] = key
        return contains(document, self.required)
