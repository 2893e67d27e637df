"""Assistants kept in the process, so a run's submit does not read its assistant each time.

Every submit resolves its assistant by id (about a tenth of the API's CPU per run when it
was a round trip each time). Entries are dropped when any process changes an assistant:
the writer evicts its own entry and publishes the id on the event bus
(`Keys.assistants_channel`); every process listening evicts it too. Three rules keep it
correct:

- Only reads without an auth filter are served here: a filter is a query condition and
  stays the store's to enforce, so a filtered read always goes to the database.
- A read that was in flight when any eviction arrived is not kept (the generation
  counter): it may have read the row just before the change was committed.
- Entries expire after `seconds` whatever happens, which bounds how long a lost
  invalidation (a Redis outage between a write and its PUBLISH, or a reconnect of the
  pub/sub connection) can leave a process on an older version.

Until `start` has subscribed (and after `close`) every read goes to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from uuid import UUID

from broker.errors import StoreUnavailable
from broker.events import EventBus, Subscription
from broker.models import Assistant
from broker.storage.assistants import AssistantStore

__all__ = ["AssistantCache"]

log = logging.getLogger(__name__)

_EVERYTHING = b"*"


class AssistantCache:
    def __init__(
        self,
        store: AssistantStore,
        bus: EventBus,
        channel: str,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._bus, self._channel = store, bus, channel
        self._seconds, self._clock = seconds, clock
        self._entries: dict[UUID, tuple[float, Assistant]] = {}
        self._generation = 0  # bumped by every eviction
        self._subscription: Subscription | None = None
        self._listener: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._listener is not None and not self._listener.done()

    async def start(self) -> None:
        """Subscribes to invalidations; from then on reads may be served from memory."""
        if self._seconds <= 0 or self.active:
            return
        self._subscription = await self._bus.subscribe(self._channel)
        self._listener = asyncio.create_task(self._listen(), name="assistant-cache")

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        self._evict(None)

    async def get(self, assistant_id: UUID) -> Assistant:
        """The assistant, as no auth filter sees it (NotFound is not kept)."""
        now = self._clock()
        entry = self._entries.get(assistant_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        generation = self._generation
        assistant = await self._store.get(assistant_id)
        if self.active and generation == self._generation:
            self._entries[assistant_id] = (now + self._seconds, assistant)
        return assistant

    async def changed(self, assistant_id: UUID) -> None:
        """After a committed write of the assistant: every process drops it."""
        self._evict(assistant_id)
        try:
            await self._bus.publish(self._channel, str(assistant_id).encode())
        except StoreUnavailable as exc:  # the write stands; entries expire on their own
            log.warning(
                "assistant %s changed, but Redis is unreachable (%s): other processes "
                "may use the previous version for up to %.0fs",
                assistant_id,
                exc,
                self._seconds,
            )

    def _evict(self, assistant_id: UUID | None) -> None:
        self._generation += 1
        if assistant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(assistant_id, None)

    async def _listen(self) -> None:
        assert self._subscription is not None
        try:
            while True:
                message = await self._subscription.get(60.0)
                if message is not None:
                    self._evict(_assistant_id(message))
        finally:
            self._evict(None)  # nobody tells this process of changes any more


def _assistant_id(message: bytes) -> UUID | None:
    """The id a message names; None (everything) for `*` or anything unreadable."""
    if message == _EVERYTHING:
        return None
    try:
        return UUID(message.decode())
    except ValueError:
        return None
