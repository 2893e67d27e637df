"""LangGraph's checkpointer on the `checkpoints`/`checkpoint_writes` tables, once.

The serde's typed blob is the exact record; the `values` and `metadata` JSON columns
are readable renderings for ops and for metadata filters (see `rows`).

A worker writes through `fenced(run_id, attempt)`: its puts land only while that attempt
still owns the running run. Each backend says how it reads, writes and checks the fence
(`_fetch`, `_upsert`, `_atomically`); what is stored and which rows go is decided here.
"""

from __future__ import annotations

import builtins
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from sqlalchemy import ColumnElement, Table
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import UpdateBase

from broker.storage.checkpoints import statements
from broker.storage.checkpoints.async_saver import AsyncSaver, Fence
from broker.storage.checkpoints.rows import (
    CHECKPOINT_KEY,
    checkpoint_config,
    checkpoint_row,
    load_checkpoint,
    write_rows,
)
from broker.storage.tables import checkpoint_writes, checkpoints

_cp = checkpoints.c
_wr = checkpoint_writes.c

# A stored pending write: task_id, channel, and the serde's type and blob.
StoredWrite = tuple[str, str, str, bytes]


@dataclass(frozen=True)
class Listing:
    """What `alist` asks for, newest first."""

    key: dict[str, str]  # the given columns of CHECKPOINT_KEY
    filter: dict[str, Any] | None  # metadata containing this (JSONB's `@>`)
    before: str | None  # checkpoint_ids below this one
    limit: int | None


class Checkpointer(AsyncSaver):
    """Checkpoints and pending writes in the `checkpoints`/`checkpoint_writes` tables."""

    def __init__(self, engine: AsyncEngine, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self._engine = engine

    # -- what each backend supplies ------------------------------------------

    @abstractmethod
    async def _fetch(
        self, listing: Listing
    ) -> Iterable[tuple[Mapping[str, Any], Iterable[StoredWrite]]]:
        """The checkpoint rows `listing` picks, each with its writes in writes_sort_key order."""

    @abstractmethod
    async def _upsert(
        self, table: Table, rows: builtins.list[dict[str, Any]], fence: Fence | None
    ) -> bool:
        """Writes `rows` (`statements.on_conflict`) if `fence` holds; says whether it did."""

    @abstractmethod
    async def _atomically(self, steps: Sequence[UpdateBase]) -> None:
        """Runs the statements as one: in this order, or on one snapshot."""

    # -- reads ---------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        # Every run reads its thread's latest checkpoint to start and for its result.
        configurable = config["configurable"]
        key = {
            "thread_id": configurable["thread_id"],
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),  # the root graph's
            "checkpoint_id": get_checkpoint_id(config),  # None: the latest
        }
        found = [t async for t in self.alist({"configurable": key}, limit=1)]
        return found[0] if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        configurable = config["configurable"] if config else {}
        listing = Listing(
            key={
                name: value
                for name in CHECKPOINT_KEY
                if (value := configurable.get(name)) is not None
            },
            filter=filter or None,
            before=(get_checkpoint_id(before) or None) if before else None,
            limit=limit,
        )
        for row, writes in await self._fetch(listing):
            yield self._to_tuple(row, writes)

    # -- writes --------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"]
        saved = checkpoint_config(
            configurable["thread_id"], configurable.get("checkpoint_ns", ""), checkpoint["id"]
        )
        row = checkpoint_row(
            self.serde, checkpoint, get_serializable_checkpoint_metadata(config, metadata)
        )
        row.update(saved["configurable"], parent_checkpoint_id=configurable.get("checkpoint_id"))
        await self._put(checkpoints, [row])
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if rows := write_rows(self.serde, config, writes, task_id, task_path):
            await self._put(checkpoint_writes, rows)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._purge(_cp.thread_id == thread_id, _wr.thread_id == thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self._purge(_cp.run_id.in_([str(run_id) for run_id in run_ids]))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        dialect = self._engine.dialect
        await self._atomically(statements.copy(dialect, source_thread_id, target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if not thread_ids:
            return
        if strategy == "delete":
            await self._purge(_cp.thread_id.in_(thread_ids), _wr.thread_id.in_(thread_ids))
        elif strategy == "keep_latest":
            await self._purge(_cp.thread_id.in_(thread_ids) & statements.older_than_latest())
        else:
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")

    # -- helpers -------------------------------------------------------------

    async def _put(self, table: Table, rows: builtins.list[dict[str, Any]]) -> None:
        """Upserts `rows`; under a fence, only while the fence holds (else LeaseLost)."""
        fence = self._fence
        if not await self._upsert(table, rows, fence) and fence is not None:
            raise fence.refused()

    async def _purge(
        self, where: ColumnElement[bool], writes_where: ColumnElement[bool] | None = None
    ) -> None:
        await self._atomically(statements.purge(where, writes_where))

    def _to_tuple(self, row: Mapping[str, Any], writes: Iterable[StoredWrite]) -> CheckpointTuple:
        checkpoint, metadata = load_checkpoint(
            self.serde, row["type"], row["checkpoint"], row["metadata"]
        )
        thread_id, namespace, parent_id = (
            row["thread_id"],
            row["checkpoint_ns"],
            row["parent_checkpoint_id"],
        )
        return CheckpointTuple(
            config=checkpoint_config(thread_id, namespace, row["checkpoint_id"]),
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=checkpoint_config(thread_id, namespace, parent_id) if parent_id else None,
            pending_writes=[
                (task, channel, self.serde.loads_typed((type_, blob)))
                for task, channel, type_, blob in writes
            ],
        )
