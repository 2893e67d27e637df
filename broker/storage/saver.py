"""What the worker needs of a checkpointer: LangGraph's saver, plus fenced copies."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from langgraph.checkpoint.base import BaseCheckpointSaver


class FencingSaver(Protocol):
    def fenced(self, run_id: UUID, attempt: int) -> BaseCheckpointSaver[str]:
        """A saver whose writes are refused (LeaseLost) once `attempt` lost the run."""
        ...
