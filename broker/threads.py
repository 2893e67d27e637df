"""The policy for threads: how they are created (with a ttl, from supersteps), patched,
pruned, deleted, copied and edited — and what a thread's listeners are told.

A thread's pub/sub channel (`Keys.thread_channel`) carries two kinds of message: the
announcement of a run just inserted on it (published before the run is queued, so a
listener can subscribe to the run's own channel before any of its frames exist), and
encoded `values` frames of state edits made through the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langgraph.checkpoint.base import BaseCheckpointSaver

from broker import jsonable
from broker.errors import BadRequest, Conflict, NotFound
from broker.events import Subscription, sse_frame
from broker.ids import uuid7
from broker.messaging import Messaging
from broker.models import Thread
from broker.state import StateEdit, StateReader
from broker.storage.ledger import Ledger
from broker.storage.threads import ThreadStore, TTLRequest
from broker.storage.visibility import Filter

_RUN = b"\x00run:"


def run_announcement(run_id: UUID) -> bytes:
    return _RUN + str(run_id).encode()


def announced_run(message: bytes) -> UUID | None:
    """The run a thread-channel message announces, or None for any other message."""
    return UUID(message[len(_RUN) :].decode()) if message.startswith(_RUN) else None


@dataclass(frozen=True)
class NewThread:
    thread_id: UUID
    metadata: dict[str, Any] = field(default_factory=dict)
    if_exists: str = "raise"
    ttl: TTLRequest | None = None
    supersteps: list[list[StateEdit]] = field(default_factory=list)


class ThreadService:
    def __init__(
        self,
        ledger: Ledger,
        threads: ThreadStore,
        messaging: Messaging,
        state: StateReader,
        checkpointer: BaseCheckpointSaver[str],
        *,
        default_ttl: TTLRequest | None = None,
    ) -> None:
        self.ledger, self.threads, self.messaging = ledger, threads, messaging
        self.state, self.checkpointer = state, checkpointer
        self.default_ttl = default_ttl  # checkpointer.ttl's, for threads created without one

    async def create(self, new: NewThread, filter: Filter | None = None) -> Thread:
        """A new thread; with supersteps, rebuilt from them (only when it is new: an
        existing thread returned by if_exists="do_nothing" is left as it is)."""
        if new.supersteps and not self.state.knows(new.metadata.get("graph_id")):
            raise BadRequest(
                "supersteps need a graph: give graph_id (metadata.graph_id) naming one of "
                f"the registered graphs: {self.state.graph_ids}"
            )
        ttl = new.ttl or self.default_ttl
        thread, created = await self.threads.create(
            new.thread_id, new.metadata, if_exists=new.if_exists, ttl=ttl, filter=filter
        )
        if not (created and new.supersteps):
            return thread
        try:
            result = await self.state.apply(thread, new.supersteps)
        except BaseException:
            await self.ledger.delete_thread(thread.thread_id)  # nothing half-built stays
            raise
        await self.ledger.settle(thread.thread_id, result, drop_thread=False)
        return await self.threads.get(thread.thread_id)

    async def patch(
        self,
        thread_id: UUID,
        metadata: dict[str, Any],
        ttl: TTLRequest | None = None,
        filter: Filter | None = None,
    ) -> Thread:
        return await self.threads.patch(thread_id, metadata, ttl, filter)

    async def delete(self, thread_id: UUID, filter: Filter | None = None) -> None:
        """The thread, its runs and checkpoints; its active runs are cancelled."""
        await self.messaging.cancelled(await self.ledger.delete_thread(thread_id, filter))

    async def prune(
        self, thread_ids: list[UUID], strategy: str, filter: Filter | None = None
    ) -> int:
        """How many of the threads were pruned: deleted (their runs cancelled), or left
        with only their latest checkpoint ("keep_latest"). Missing ids are skipped."""
        pruned: list[UUID] = []
        for thread_id in dict.fromkeys(thread_ids):
            try:
                if strategy == "delete":
                    await self.delete(thread_id, filter)
                else:
                    await self.threads.get(thread_id, filter=filter)
            except NotFound:
                continue
            pruned.append(thread_id)
        if strategy == "keep_latest" and pruned:
            await self.checkpointer.aprune([str(t) for t in pruned], strategy="keep_latest")
        return len(pruned)

    async def update_state(
        self,
        thread_id: UUID,
        values: Any,
        *,
        as_node: str | None = None,
        checkpoint: dict[str, Any] | None = None,
        filter: Filter | None = None,
    ) -> dict[str, Any]:
        """A new checkpoint on an idle thread; refused while a run is pending or running.

        The checkpoint is written between two short transactions, never inside one: the
        checkpointer has connections of its own (and SQLite has a single writer).
        Listeners of the thread get its new values.
        """
        thread = await self.ledger.lock_idle(thread_id, filter)
        written, result = await self.state.update(
            thread, values, as_node=as_node, checkpoint=checkpoint
        )
        await self.ledger.settle(thread_id, result, drop_thread=False)  # busy if one came in
        frame = sse_frame("values", jsonable.dumps(result.values))
        await self.messaging.bus.publish(self.messaging.keys.thread_channel(thread_id), frame)
        return written

    async def source(self, thread_id: UUID, filter: Filter | None = None) -> Thread:
        """The thread to copy (Conflict if there is none the caller may see)."""
        try:
            return await self.threads.get(thread_id, filter=filter)
        except NotFound:
            raise Conflict(f"Thread '{thread_id}' not found; nothing to copy.") from None

    async def copy(
        self,
        source: Thread,
        copy_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        filter: Filter | None = None,
    ) -> Thread:
        """A new thread with the same metadata (`metadata` merged in) and a copy of every
        checkpoint; `filter` is checked again on the source as it is copied."""
        thread_id = source.thread_id
        copy = await self.ledger.copy_thread(source, copy_id or uuid7(), metadata, filter)
        await self.checkpointer.acopy_thread(str(thread_id), str(copy.thread_id))
        return copy

    async def announce_run(self, thread_id: UUID, run_id: UUID) -> None:
        channel = self.messaging.keys.thread_channel(thread_id)
        await self.messaging.bus.publish(channel, run_announcement(run_id))

    async def join(
        self, thread_id: UUID, filter: Filter | None = None
    ) -> tuple[Subscription, list[UUID]]:
        """Subscribes to the thread's channel, then reads its pending and running runs:
        a run inserted in between is both listed and announced, none is missed."""
        subscription = await self.messaging.bus.subscribe(
            self.messaging.keys.thread_channel(thread_id)
        )
        try:
            await self.threads.get(thread_id, filter=filter)
            return subscription, await self.threads.active_runs(thread_id)
        except BaseException:
            await subscription.close()
            raise
