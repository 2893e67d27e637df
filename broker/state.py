"""Thread state as the API shows it (ThreadState), read through the graph and our checkpointer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StateSnapshot, StateUpdate
from langgraph_sdk.runtime import AccessContext

from broker import jsonable
from broker.commands import to_command
from broker.errors import BadRequest, BrokerError
from broker.graphs import GraphRegistry
from broker.models import Thread, ThreadResult, ThreadStatus

EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


def checkpoint_of(config: RunnableConfig | None) -> dict[str, Any] | None:
    if not config:
        return None
    conf = config.get("configurable", {})
    keys = ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
    return {k: conf[k] for k in keys if k in conf}


def to_thread_state(snapshot: StateSnapshot) -> dict[str, Any]:
    checkpoint = checkpoint_of(snapshot.config)
    parent = checkpoint_of(snapshot.parent_config)
    state = {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "tasks": [_task(t) for t in snapshot.tasks],
        "metadata": snapshot.metadata,
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": list(snapshot.interrupts),
        "checkpoint_id": checkpoint.get("checkpoint_id") if checkpoint else None,
        "parent_checkpoint_id": parent.get("checkpoint_id") if parent else None,
    }
    return dict(jsonable.to_jsonable(state))


def _task(task: Any) -> dict[str, Any]:
    nested = task.state
    return {
        "id": task.id,
        "name": task.name,
        "path": list(task.path),
        "error": repr(task.error) if task.error is not None else None,
        "interrupts": list(task.interrupts),
        "checkpoint": checkpoint_of(cast(RunnableConfig, nested))
        if isinstance(nested, dict)
        else None,
        "state": to_thread_state(nested) if isinstance(nested, StateSnapshot) else None,
        "result": task.result,
    }


def thread_result(snapshot: StateSnapshot, error: Any = None) -> ThreadResult:
    """What a thread shows after a run: its latest state, and why it stopped."""
    interrupts = {t.id: list(t.interrupts) for t in snapshot.tasks if t.interrupts}
    if error is not None:
        status = ThreadStatus.ERROR
    else:
        status = ThreadStatus.INTERRUPTED if snapshot.next else ThreadStatus.IDLE
    return ThreadResult(
        status=status,
        values=jsonable.to_jsonable(snapshot.values),
        interrupts=jsonable.to_jsonable(interrupts),
        error=error,
    )


def thread_output(thread: Thread) -> dict[str, Any]:
    """A finished run's answer to wait/join, derived from its thread."""
    if thread.status == ThreadStatus.ERROR and thread.error:
        return {"__error__": thread.error}
    output = dict(thread.values or {})
    interrupts = [i for group in (thread.interrupts or {}).values() for i in group]
    if interrupts:
        output["__interrupt__"] = interrupts
    return output


@dataclass(frozen=True, slots=True)
class StateEdit:
    """One update of a superstep: `values` (or a `command`) as if `as_node` returned it."""

    values: Any
    command: dict[str, Any] | None
    as_node: str

    def update(self) -> StateUpdate:
        values = to_command(self.command) if self.command else self.values
        return StateUpdate(cast(Any, values), self.as_node)  # LangGraph takes a Command too


class StateReader:
    """Reads a thread's checkpoints through the graph that wrote them."""

    def __init__(self, graphs: GraphRegistry, checkpointer: BaseCheckpointSaver[str]) -> None:
        self._graphs = graphs
        self._checkpointer = checkpointer

    def knows(self, graph_id: Any) -> bool:
        return isinstance(graph_id, str) and graph_id in self._graphs

    @property
    def graph_ids(self) -> list[str]:
        return list(self._graphs.ids)

    async def _graph(self, thread: Thread, access: AccessContext = "threads.read") -> Any:
        graph_id = thread.metadata.get("graph_id")
        if not isinstance(graph_id, str) or not self.knows(graph_id):
            return None
        config: RunnableConfig = {"configurable": {"thread_id": str(thread.thread_id)}}
        graph = await self._graphs.get(graph_id, config, access=access)
        return graph.copy(update={"checkpointer": self._checkpointer, "store": self._graphs.store})

    async def update(
        self,
        thread: Thread,
        values: Any,
        *,
        as_node: str | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], ThreadResult]:
        """Writes a new checkpoint as if `as_node` returned `values`."""
        graph = await self._graph(thread, "threads.update")
        if graph is None:
            raise BadRequest(
                f"Thread '{thread.thread_id}' has no graph yet: run it once, "
                "or create it with metadata.graph_id, before updating its state."
            )
        with _graph_refusals():
            config = await graph.aupdate_state(_config(thread, checkpoint), values, as_node=as_node)
        snapshot = await graph.aget_state(config)
        return checkpoint_of(config) or {}, thread_result(snapshot)

    async def apply(self, thread: Thread, supersteps: list[list[StateEdit]]) -> ThreadResult:
        """Writes one checkpoint per superstep, each applying its updates in order (how
        a thread is rebuilt from another deployment's history)."""
        graph = await self._graph(thread, "threads.update")
        if graph is None:
            raise BadRequest(
                "supersteps need a graph: create the thread with graph_id "
                "(metadata.graph_id naming a registered graph)."
            )
        steps = [[edit.update() for edit in step] for step in supersteps]
        with _graph_refusals("supersteps: "):
            config = await graph.abulk_update_state(_config(thread, None), steps)
        return thread_result(await graph.aget_state(config))

    async def get(
        self, thread: Thread, checkpoint: dict[str, Any] | None = None, *, subgraphs: bool = False
    ) -> dict[str, Any]:
        graph = await self._graph(thread)
        if graph is None:
            return dict(EMPTY_STATE)
        config = _config(thread, checkpoint)
        return to_thread_state(await graph.aget_state(config, subgraphs=subgraphs))

    async def history(
        self,
        thread: Thread,
        *,
        limit: int = 10,
        before: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        checkpoint: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        graph = await self._graph(thread)
        if graph is None:
            return []
        config = _config(thread, checkpoint)
        before_config = _config(thread, before) if before else None
        states = graph.aget_state_history(
            config, limit=limit, before=before_config, filter=metadata
        )
        return [to_thread_state(s) async for s in states]


@contextmanager
def _graph_refusals(prefix: str = "") -> Iterator[None]:
    """What the graph refuses (an unknown as_node, a bad value) is the client's 400; a
    store that went away stays a 503, a lost lease a 409."""
    try:
        yield
    except BrokerError:
        raise
    except Exception as exc:
        raise BadRequest(f"{prefix}{str(exc) or type(exc).__name__}") from exc


def _config(thread: Thread, checkpoint: dict[str, Any] | None) -> RunnableConfig:
    configurable = {"checkpoint_ns": "", **(checkpoint or {}), "thread_id": str(thread.thread_id)}
    return {"configurable": configurable}
