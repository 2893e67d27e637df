"""The policy: how runs are submitted, joined, cancelled and finished, and what threads
become. Routes and the worker loop call this layer; it decides, and the ports below it
(ledger, queue, bus, event log, checkpointer) carry it out.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast
from uuid import UUID, uuid4

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.pregel import Pregel

from broker import users
from broker.assistant_cache import AssistantCache
from broker.errors import BadRequest, Conflict, Invalid, NotFound, StoreUnavailable
from broker.events import Silence, Subscription
from broker.graphs import GraphRegistry
from broker.ids import uuid7
from broker.messaging import Messaging
from broker.models import (
    Assistant,
    CancelAction,
    Run,
    RunRequest,
    Thread,
    ThreadResult,
)
from broker.runspec import run_row
from broker.state import StateReader, thread_output
from broker.storage.assistants import AssistantSpec, AssistantStore, system_assistant_id
from broker.storage.ledger import Ledger
from broker.storage.ledger.outcomes import Cancelled, Submit
from broker.storage.runs import RunStore
from broker.storage.threads import ThreadStore, TTLRequest
from broker.storage.visibility import Filter, params
from broker.threads import NewThread, ThreadService
from broker.webhooks.policy import WebhookPolicy

__all__ = ["BrokerService", "Policies", "Stores", "Submission", "ThreadResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stores:
    """The storage ports: the ledger for every state change, the stores for reads."""

    ledger: Ledger
    assistants: AssistantStore
    threads: ThreadStore
    runs: RunStore


@dataclass(frozen=True)
class Policies:
    """What langgraph.json decides for requests: which webhooks a run may name, and the
    ttl of a thread created without one (checkpointer.ttl)."""

    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    default_ttl: TTLRequest | None = None
    # How long an assistant read without an auth filter may be kept (0: never).
    assistant_cache_seconds: float = 10.0


@dataclass(frozen=True)
class Submission:
    run: Run
    subscription: Subscription | None


class BrokerService:
    def __init__(
        self,
        stores: Stores,
        messaging: Messaging,
        graphs: GraphRegistry,
        checkpointer: BaseCheckpointSaver[str],
        policies: Policies | None = None,
    ) -> None:
        self.policies = policies or Policies()
        self.ledger = stores.ledger
        self.assistants, self.threads, self.runs = stores.assistants, stores.threads, stores.runs
        self.queue, self.bus, self.keys = messaging.queue, messaging.bus, messaging.keys
        self.graphs = graphs
        self.checkpointer = checkpointer
        self.messaging = messaging
        self.state = StateReader(graphs, checkpointer)
        self.assistant_cache = AssistantCache(
            self.assistants,
            messaging.bus,
            messaging.keys.assistants_channel,
            self.policies.assistant_cache_seconds,
        )
        self.thread_policy = ThreadService(
            self.ledger,
            self.threads,
            messaging,
            self.state,
            checkpointer,
            default_ttl=self.policies.default_ttl,
        )

    async def start(self) -> None:
        await self.assistants.ensure_system(self.graphs.descriptions)
        await self.assistant_cache.start()

    async def close(self) -> None:
        await self.assistant_cache.close()

    async def resolve_assistant(self, assistant_id: str, filter: Filter | None = None) -> Assistant:
        """A UUID names an assistant; a registered graph id names its system assistant.
        `filter` (an auth filter) hides what the caller may not see; only a read without
        one may be answered from this process's cache."""
        if assistant_id in self.graphs:
            uuid = system_assistant_id(assistant_id)
        else:
            try:
                uuid = UUID(assistant_id)
            except ValueError:
                raise Invalid(
                    f"Invalid assistant: '{assistant_id}'. Must be either: a valid assistant "
                    f"UUID, or one of the registered graphs: {self.graphs.ids}"
                ) from None
        if filter is None:
            return await self.assistant_cache.get(uuid)
        return await self.assistants.get(uuid, filter)

    # -- assistants ---------------------------------------------------------------------

    async def create_assistant(
        self,
        assistant_id: UUID | None,
        spec: AssistantSpec,
        *,
        if_exists: str = "raise",
        filter: Filter | None = None,
    ) -> Assistant:
        self._known_graph(spec.graph_id)
        assistant = await self.assistants.create(
            assistant_id or uuid4(), spec, if_exists=if_exists, filter=filter
        )
        # A new id (or the one that stood) is not in any cache: nothing to evict.
        return assistant

    async def patch_assistant(
        self,
        assistant_id: str,
        changes: dict[str, Any],
        metadata: dict[str, Any] | None,
        filter: Filter | None = None,
    ) -> Assistant:
        """A new version: `changes` replace the current fields, `metadata` is merged."""
        if "graph_id" in changes:
            self._known_graph(changes["graph_id"])
        assistant = await self.resolve_assistant(assistant_id, filter)
        try:  # evicted even when it failed: a lost connection may hide a commit
            return await self.assistants.patch(assistant.assistant_id, changes, metadata, filter)
        finally:
            await self.assistant_cache.changed(assistant.assistant_id)

    async def set_latest_assistant(
        self, assistant_id: str, version: int, filter: Filter | None = None
    ) -> Assistant:
        assistant = await self.resolve_assistant(assistant_id, filter)
        try:
            return await self.assistants.set_latest(assistant.assistant_id, version, filter)
        finally:
            await self.assistant_cache.changed(assistant.assistant_id)

    async def delete_assistant(
        self,
        assistant_id: str,
        *,
        delete_threads: bool = False,
        filter: Filter | None = None,
        thread_filter: Filter | None = None,
    ) -> None:
        """Deletes a created assistant and its versions; with `delete_threads`, first every
        thread whose metadata names it (their runs are cancelled, as any thread delete)."""
        assistant = await self.resolve_assistant(assistant_id, filter)
        if assistant.metadata.get("created_by") == "system":
            raise Conflict(
                f"Assistant '{assistant.assistant_id}' is the system assistant of graph "
                f"'{assistant.graph_id}' (made from langgraph.json): it cannot be deleted."
            )
        if delete_threads:
            await self._delete_threads_of(assistant.assistant_id, thread_filter)
        try:
            await self.assistants.delete(assistant.assistant_id, filter)
        finally:
            await self.assistant_cache.changed(assistant.assistant_id)

    async def _delete_threads_of(self, assistant_id: UUID, filter: Filter | None) -> None:
        named = {"assistant_id": str(assistant_id)}
        while True:
            found, _ = await self.threads.search(metadata=named, limit=100, filter=filter)
            if not found:
                return
            for thread in found:
                with contextlib.suppress(NotFound):  # deleted meanwhile
                    await self.delete_thread(thread.thread_id, filter)

    async def assistant_graph(
        self, assistant_id: str, filter: Filter | None = None
    ) -> tuple[Assistant, Pregel[Any, Any]]:
        """The assistant and its graph, built with its config for introspection."""
        assistant = await self.resolve_assistant(assistant_id, filter)
        config = cast(RunnableConfig, assistant.config)
        graph = await self.graphs.get(assistant.graph_id, config, access="assistants.read")
        return assistant, graph

    def _known_graph(self, graph_id: str) -> None:
        if graph_id not in self.graphs:
            raise NotFound(
                f"Graph '{graph_id}' not found: it is not in langgraph.json "
                f"(registered graphs: {self.graphs.ids})."
            )

    # -- runs: submit -------------------------------------------------------------------

    async def submit(
        self,
        thread_id: UUID | None,
        request: RunRequest,
        *,
        subscribe: bool,
        filter: Filter | None = None,
    ) -> Submission:
        """Subscribe to the run's events if asked, insert the run, then wake a worker.

        Subscribing first is what lets the creator's stream miss nothing, and means a
        Redis outage refuses the request before anything is written. Once the row is in
        Postgres the run is accepted: a lost wake-up only delays it (the sweeper pushes it).
        """
        check_request(thread_id, request)
        self.check_webhook(request.webhook)
        assistant = await self.resolve_assistant(request.assistant_id)
        submit = submit_for(thread_id, request, assistant, filter, self.policies.default_ttl)
        channel = self.keys.run_channel(submit.row["run_id"])
        subscription = await self.bus.subscribe(channel) if subscribe else None
        try:
            run, cancelled = await self.ledger.submit(submit)
        except BaseException:
            if subscription is not None:
                await subscription.close()
            raise
        await self.accepted(run, cancelled, thread_id, request.after_seconds)
        return Submission(run, subscription)

    async def accepted(
        self,
        run: Run,
        cancelled: Cancelled,
        thread_id: UUID | None,
        after_seconds: float | None = None,
    ) -> None:
        """After a run's insert is committed: what its strategy cancelled is told, its
        thread's listeners hear of it, and a worker is woken (or the run is scheduled)."""
        try:
            await self.messaging.cancelled(cancelled)
            if thread_id is not None:  # before it is queued: see broker/threads.py
                await self.thread_policy.announce_run(thread_id, run.run_id)
            if after_seconds:
                await self.queue.schedule(run.run_id, time.time() + after_seconds)
            else:
                await self.queue.push(run.run_id)
        except StoreUnavailable as exc:
            log.warning(
                "run %s accepted, but Redis is unreachable (%s): the sweeper will start it",
                run.run_id,
                exc,
            )

    def check_webhook(self, url: str | None) -> None:
        """Invalid (422 `webhook: …`) unless langgraph.json's webhooks policy accepts `url`:
        for runs here, and for crons when they are created or changed."""
        self.policies.webhooks.check(url)

    async def submit_batch(self, requests: list[RunRequest]) -> list[Run]:
        return [(await self.submit(None, r, subscribe=False)).run for r in requests]

    # -- runs: join, results, cancel, delete ----------------------------------------------

    async def join(
        self, run_id: UUID, thread_id: UUID | None, filter: Filter | None = None
    ) -> tuple[Run, Subscription]:
        """Subscribes to a run's live events; the run is read again once subscribed."""
        run = await self.runs.get(run_id, thread_id, filter=filter)
        if not run.status.active:
            return run, Silence()  # it has ended: nothing live will come
        subscription = await self.bus.subscribe(self.keys.run_channel(run_id))
        try:
            return await self.runs.get(run_id, thread_id, filter=filter), subscription
        except NotFound:
            await subscription.close()
            raise

    async def thread_history(
        self, thread_id: UUID, last_event_id: str
    ) -> list[tuple[UUID, str, bytes]]:
        """What the thread's resumable runs logged after `last_event_id`, oldest run first:
        (run, event id, frames or end marker). Logs live for the run plus a grace period."""
        runs = await self.runs.list(thread_id, limit=1000)
        logged: list[tuple[UUID, str, bytes]] = []
        for run in reversed(runs):  # listed newest first
            if run.options.resumable:
                entries = await self.replay(run.run_id, last_event_id)
                logged += [(run.run_id, event_id, data) for event_id, data in entries]
        return logged

    async def thread_log(
        self, thread_id: UUID, last_event_id: str | None
    ) -> list[tuple[UUID, str, bytes]]:
        """What a protocol stream replays: after `last_event_id`, every resumable run's
        log (as `thread_history`); without one, the logs of the thread's active runs and
        of its newest run from their start, so a stream opened just after a run started
        (or ended) still sees all of it."""
        if last_event_id is not None:
            return await self.thread_history(thread_id, last_event_id)
        runs = await self.runs.list(thread_id, limit=1000)  # newest first
        chosen = [r for i, r in enumerate(runs) if i == 0 or r.status.active]
        logged: list[tuple[UUID, str, bytes]] = []
        for run in reversed(chosen):
            if run.options.resumable:
                entries = await self.replay(run.run_id, "-")
                logged += [(run.run_id, event_id, data) for event_id, data in entries]
        return logged

    async def result(self, run_id: UUID) -> dict[str, Any] | None:
        """The final output of a run that has ended, or None while it is active."""
        try:
            run = await self.runs.get(run_id)
        except NotFound:  # a stateless run's thread is deleted when it ends
            return {}
        return await self.ended_output(run) if not run.status.active else None

    async def ended_output(self, run: Run) -> dict[str, Any]:
        """The final output of `run`, read when it had already ended: its thread's."""
        try:
            thread = await self.threads.get(run.thread_id, include_temporary=True)
        except NotFound:
            return {}
        return thread_output(thread)

    async def replay(self, run_id: UUID, last_event_id: str) -> list[tuple[str, bytes]]:
        """A resumable run's frames after `last_event_id` (its end marker last, if it ended)."""
        return await self.messaging.log.after(self.keys.run_log(run_id), last_event_id)

    async def cancel(
        self,
        run_ids: list[UUID],
        action: CancelAction,
        *,
        thread_id: UUID | None = None,
        filter: Filter | None = None,
    ) -> list[Run]:
        """Cancels runs: pending ones end now, running ones are told to stop."""
        cancelled = await self.ledger.cancel(run_ids, action, thread_id, filter)
        await self.messaging.cancelled(cancelled)
        return cancelled.ended + [run for run, _ in cancelled.signalled]

    async def cancel_where(
        self, status: str, action: CancelAction, filter: Filter | None = None
    ) -> int:
        """Bulk cancel of every pending, running or active ("all") run."""
        cancelled = await self.ledger.cancel_where(status, action, filter)
        await self.messaging.cancelled(cancelled)
        return len(cancelled.ended) + len(cancelled.signalled)

    async def delete_run(self, thread_id: UUID, run_id: UUID, filter: Filter | None = None) -> None:
        """Deletes a finished run and the checkpoints it wrote."""
        await self.ledger.delete_run(run_id, thread_id, filter)
        await self.checkpointer.adelete_for_runs([str(run_id)])

    # -- threads: the policy is ThreadService's (broker/threads.py) -----------------------

    async def create_thread(
        self, thread_id: UUID, metadata: dict[str, Any], *, if_exists: str = "raise"
    ) -> Thread:
        return await self.thread_policy.create(NewThread(thread_id, metadata, if_exists))

    async def delete_thread(self, thread_id: UUID, filter: Filter | None = None) -> None:
        await self.thread_policy.delete(thread_id, filter)


def submit_for(
    thread_id: UUID | None,
    request: RunRequest,
    assistant: Assistant,
    filter: Filter | None,
    default_ttl: TTLRequest | None = None,
) -> Submit:
    temporary = thread_id is None
    row = run_row(uuid7(), thread_id or uuid7(), request, assistant, temporary=temporary)
    tags = {"graph_id": assistant.graph_id, "assistant_id": str(assistant.assistant_id)}
    return Submit(
        # A stateless run's hidden thread carries the run's metadata: what an auth filter
        # on its run (join, cancel) is checked against.
        row=row,
        tags={**request.metadata, **tags} if temporary else tags,
        thread_metadata=request.metadata,  # of a thread `if_not_exists: create` makes
        thread_ttl=(default_ttl.strategy, default_ttl.minutes) if default_ttl else None,
        auth=params(filter),
        temporary=temporary,
        strategy=request.multitask_strategy,
        create_thread=request.if_not_exists == "create",
        delay=timedelta(seconds=request.after_seconds or 0),
    )


def check_request(thread_id: UUID | None, request: RunRequest) -> None:
    configurable = request.config.get("configurable") or {}
    if set(configurable) - users.RUN_KEYS and request.context:  # the user's are ours
        raise BadRequest("Cannot specify both configurable and context. Use only one of them.")
    if thread_id is None and request.command and "resume" in request.command:
        raise BadRequest("You must provide a thread_id when resuming.")
