"""What our checkpointers share: async only, InMemorySaver-style versions, fenced copies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self
from uuid import UUID

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
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

    # Whatever the arguments: these only refuse.
    def get_tuple(self, *args: Any, **kwargs: Any) -> CheckpointTuple | None:
        raise self._sync()

    def list(self, *args: Any, **kwargs: Any) -> Iterator[CheckpointTuple]:
        raise self._sync()

    def put(self, *args: Any, **kwargs: Any) -> RunnableConfig:
        raise self._sync()

    def put_writes(self, *args: Any, **kwargs: Any) -> None:
        raise self._sync()

    def delete_thread(self, *args: Any, **kwargs: Any) -> None:
        raise self._sync()
