"""What our checkpointers share: async only, InMemorySaver-style versions, fenced copies."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self
from uuid import UUID

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from broker.errors import LeaseLost
from broker.storage.checkpoints.rows import next_version


@dataclass(frozen=True)
class Fence:
    """The claim a fenced saver writes under: this attempt of this run, still running."""

    run_id: UUID
    attempt: int

    def refused(self) -> LeaseLost:
        return LeaseLost(
            f"Run {self.run_id} attempt {self.attempt} was taken over "
            "or has ended; its checkpoint writes are refused."
        )


class AsyncSaver(BaseCheckpointSaver[str]):
    """LangGraph's async graphs call only the a-prefixed methods; the sync ones refuse."""

    _fence: Fence | None = None

    def fenced(self, run_id: UUID, attempt: int) -> Self:
        """A copy whose puts are refused (`LeaseLost`) once `attempt` no longer owns the run.

        Shares this saver's engine and serde; reads are not fenced.
        """
        twin = copy.copy(self)
        twin._fence = Fence(run_id, attempt)
        return twin

    def get_next_version(self, current: str | None, channel: None) -> str:
        return next_version(current)

    def _sync(self) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} is async-only; use the a-prefixed methods"
        )

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise self._sync()

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        raise self._sync()

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        raise self._sync()

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        raise self._sync()

    def delete_thread(self, thread_id: str) -> None:
        raise self._sync()
