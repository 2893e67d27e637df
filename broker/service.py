"""The policy: how runs are submitted, claimed and finished, and what threads become.

Routes and the worker loop call this layer; the stores below it only read and write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.errors import BadRequest, Invalid, NotFound, ThreadBusy
from broker.events import EventBus, Subscription
from broker.graphs import GraphRegistry
from broker.ids import uuid7
from broker.keys import Keys
from broker.models import (
    Assistant,
    Claim,
    MultitaskStrategy,
    Run,
    RunOutcome,
    RunRequest,
    RunStatus,
    ThreadStatus,
)
from broker.queue import RunQueue
from broker.storage import runs as run_rows
from broker.storage import threads as thread_rows
from broker.storage.assistants import AssistantStore, system_assistant_id
from broker.storage.runs import RunStore
from broker.storage.tables import threads
from broker.storage.threads import ThreadStore


@dataclass(frozen=True)
class Submission:
    run: Run
    subscription: Subscription | None


@dataclass(frozen=True)
class ThreadResult:
    """What a finished run leaves on its thread."""

    status: ThreadStatus
    values: Any = None
    interrupts: dict[str, Any] | None = None
    error: Any = None


class BrokerService:
    def __init__(
        self,
        engine: AsyncEngine,
        queue: RunQueue,
        bus: EventBus,
        keys: Keys,
        graphs: GraphRegistry,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.bus = bus
        self.keys = keys
        self.graphs = graphs
        self.assistants = AssistantStore(engine)
        self.threads = ThreadStore(engine)
        self.runs = RunStore(engine)

    # -- assistants ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.assistants.ensure_system(self.graphs.ids)

    async def resolve_assistant(self, assistant_id: str) -> Assistant:
        """A UUID names an assistant; a registered graph id names its system assistant."""
        if assistant_id in self.graphs:
            return await self.assistants.get(system_assistant_id(assistant_id))
        try:
            uuid = UUID(assistant_id)
        except ValueError:
            raise Invalid(
                f"Invalid assistant: '{assistant_id}'. Must be either: a valid assistant UUID, "
                f"or one of the registered graphs: {self.graphs.ids}"
            ) from None
        return await self.assistants.get(uuid)

    # -- runs: submit -------------------------------------------------------------------

    async def submit(
        self, thread_id: UUID | None, request: RunRequest, *, subscribe: bool
    ) -> Submission:
        """Insert the run, subscribe to its events if asked, then wake a worker.

        Subscribing before the wake-up is what lets the creator's stream miss nothing.
        """
        _check_request(thread_id, request)
        assistant = await self.resolve_assistant(request.assistant_id)
        run = await self._insert(thread_id, request, assistant)
        subscription = (
            await self.bus.subscribe(self.keys.run_channel(run.run_id)) if subscribe else None
        )
        if request.after_seconds is None:
            await self.queue.push(run.run_id)
        return Submission(run, subscription)

    async def _insert(
        self, thread_id: UUID | None, request: RunRequest, assistant: Assistant
    ) -> Run:
        run_id = uuid7()
        temporary = thread_id is None
        tid = thread_id or uuid7()
        async with self.engine.begin() as conn:
            await self._lock_thread(conn, tid, request, temporary=temporary)
            values = _run_row(run_id, tid, request, assistant, temporary=temporary)
            run = await run_rows.insert_run(conn, values)
            await _mark_thread_busy(conn, tid, assistant)
        return run

    async def _lock_thread(
        self, conn: AsyncConnection, thread_id: UUID, request: RunRequest, *, temporary: bool
    ) -> None:
        if temporary or request.if_not_exists == "create":
            await conn.execute(_upsert_thread(thread_id, temporary=temporary))
        thread = await thread_rows.get_thread(conn, thread_id, lock=True)
        if thread is None:
            raise NotFound(f"Thread '{thread_id}' not found.")
        rejects = request.multitask_strategy == MultitaskStrategy.REJECT
        if rejects and await run_rows.active_runs(conn, thread_id):
            raise ThreadBusy()

    # -- runs: claim, heartbeat, finish (the worker's side) ------------------------------

    async def claim(self, run_id: UUID, worker_id: str, lease: timedelta) -> Claim | None:
        """Claims the thread's next due run, unless another run on it is running."""
        async with self.engine.begin() as conn:
            thread_id = await run_rows.thread_of(conn, run_id)
            if thread_id is None:
                return None
            thread = await thread_rows.get_thread(conn, thread_id, lock=True)
            if thread is None or await run_rows.has_running(conn, thread_id):
                return None
            next_id = await run_rows.next_pending(conn, thread_id)
            if next_id is None:
                return None
            run = await run_rows.mark_running(conn, next_id, worker_id, lease)
        graph_id = str(run.kwargs.get("config", {}).get("configurable", {}).get("graph_id"))
        return Claim(run=run, attempt=run.attempt, graph_id=graph_id, temporary=thread.temporary)

    async def heartbeat(self, claim: Claim, lease: timedelta) -> bool:
        return await self.runs.heartbeat(claim.run.run_id, claim.attempt, lease)

    async def finish(self, claim: Claim, outcome: RunOutcome, result: ThreadResult) -> bool:
        """Ends the run (fenced) and settles its thread; False if the claim was lost."""
        run = claim.run
        async with self.engine.begin() as conn:
            thread_id = await run_rows.mark_finished(
                conn, run.run_id, claim.attempt, outcome.status
            )
            if thread_id is None:
                return False
            await thread_rows.get_thread(conn, thread_id, lock=True)
            next_id = await run_rows.next_pending(conn, thread_id)
            await self._settle_thread(conn, claim, result, busy=next_id is not None)
        if next_id is not None:
            await self.queue.push(next_id)
        return True

    async def _settle_thread(
        self, conn: AsyncConnection, claim: Claim, result: ThreadResult, *, busy: bool
    ) -> None:
        thread_id = claim.run.thread_id
        if claim.temporary and not busy and claim.run.kwargs.get("on_completion") != "keep":
            await thread_rows.delete_thread(conn, thread_id)
            return
        await thread_rows.set_thread_state(
            conn,
            thread_id,
            status=ThreadStatus.BUSY if busy else result.status,
            values=result.values,
            interrupts=result.interrupts,
            error=result.error,
        )


def _check_request(thread_id: UUID | None, request: RunRequest) -> None:
    if request.config.get("configurable") and request.context:
        raise BadRequest("Cannot specify both configurable and context. Use only one of them.")
    if thread_id is None and request.command and "resume" in request.command:
        raise BadRequest("You must provide a thread_id when resuming.")
    if request.multitask_strategy in (MultitaskStrategy.INTERRUPT, MultitaskStrategy.ROLLBACK):
        raise BadRequest(
            f"multitask_strategy '{request.multitask_strategy}' is not supported yet; "
            "use 'enqueue' or 'reject'."
        )
    if request.after_seconds:
        raise BadRequest("after_seconds (delayed runs) is not supported yet.")


def _run_row(
    run_id: UUID, thread_id: UUID, request: RunRequest, assistant: Assistant, *, temporary: bool
) -> dict[str, Any]:
    config = _run_config(run_id, thread_id, request, assistant)
    row: dict[str, Any] = {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": assistant.assistant_id,
        "status": RunStatus.PENDING.value,
        "metadata": {
            **assistant.metadata,
            **request.metadata,
            "assistant_id": str(assistant.assistant_id),
        },
        "kwargs": _kwargs(request, config, temporary=temporary),
        "multitask_strategy": request.multitask_strategy.value,
    }
    return row


def _run_config(
    run_id: UUID, thread_id: UUID, request: RunRequest, assistant: Assistant
) -> dict[str, Any]:
    config = {**assistant.config, **request.config}
    configurable: dict[str, Any] = {
        **assistant.config.get("configurable", {}),
        **request.config.get("configurable", {}),
        **request.context,
        **(request.checkpoint or {}),
        "run_id": str(run_id),
        "thread_id": str(thread_id),
        "graph_id": assistant.graph_id,
        "assistant_id": str(assistant.assistant_id),
    }
    if request.checkpoint_id:
        configurable["checkpoint_id"] = request.checkpoint_id
    config["configurable"] = configurable
    return config


def _kwargs(request: RunRequest, config: dict[str, Any], *, temporary: bool) -> dict[str, Any]:
    return {
        "input": request.input,
        "command": request.command,
        "config": config,
        "context": request.context,
        "stream_mode": request.stream_mode,
        "interrupt_before": request.interrupt_before,
        "interrupt_after": request.interrupt_after,
        "webhook": request.webhook,
        "feedback_keys": request.feedback_keys,
        "temporary": temporary,
        "subgraphs": request.stream_subgraphs,
        "resumable": request.stream_resumable,
        "durability": request.durability,
        "on_completion": request.on_completion,
    }


def _upsert_thread(thread_id: UUID, *, temporary: bool) -> Any:
    return (
        insert(threads)
        .values(thread_id=thread_id, metadata={}, temporary=temporary)
        .on_conflict_do_nothing()
    )


async def _mark_thread_busy(conn: AsyncConnection, thread_id: UUID, assistant: Assistant) -> None:
    tags = {"graph_id": assistant.graph_id, "assistant_id": str(assistant.assistant_id)}
    await conn.execute(
        update(threads)
        .where(threads.c.thread_id == thread_id)
        .values(
            status=ThreadStatus.BUSY.value,
            metadata=threads.c.metadata.op("||", return_type=JSONB)(type_coerce(tags, JSONB)),
            updated_at=func.now(),
        )
    )
