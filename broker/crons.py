"""Crons: scheduled runs, each tick fired exactly once however many schedulers run.

Every worker process (and `broker dev`) runs the scheduler (`CronService.fire_due`,
polled every BROKER_CRON_POLL_SECONDS). It asks the ledger to fire the due crons in one
transaction: the rows are locked with SKIP LOCKED (SQLite: one writer at a time), each
one's run is submitted through the ledger's submit path (so its multitask strategy
holds and the run is durable, joinable and cancellable like any other) and its
`next_run_date` moves to the first tick after *now* — after downtime a cron fires once
for the missed ticks, not once per tick. Workers are woken after the commit.

Schedules are cron expressions (croniter) in an IANA timezone (UTC when none is
given): 5 fields, or 6 with seconds first when BROKER_CRON_SECONDS is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from broker import users
from broker.errors import Invalid
from broker.models import Assistant, Cron, MultitaskStrategy, RunRequest
from broker.service import BrokerService, check_request, submit_for
from broker.storage.assistants import system_assistant_id
from broker.storage.crons import CronStore
from broker.storage.ledger.outcomes import Firing
from broker.storage.visibility import Filter
from broker.users import User

log = logging.getLogger(__name__)

# Crons fired per transaction; a scheduler with more due goes on at once.
BATCH = 100
FIRE_TIME_KEY = "cron_fire_time"  # in each run's metadata: the tick it was fired for
CRON_ID_KEY = "cron_id"
_REQUEST_FIELDS = frozenset(f.name for f in fields(RunRequest))


@dataclass(frozen=True)
class CronSpec:
    """A cron as a client asks for it; `payload` holds the run's fields (RunRequest's names)."""

    assistant_id: str
    schedule: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    timezone: str | None = None
    end_time: datetime | None = None
    enabled: bool = True
    on_run_completed: str | None = None


@dataclass(frozen=True)
class CronChanges:
    """A PATCH: the cron's fields given (`end_time` None clears it when listed in
    `fields`), the run fields to replace, metadata to merge."""

    given: dict[str, Any]  # schedule, timezone, end_time, enabled, on_run_completed
    payload: dict[str, Any]
    metadata: dict[str, Any] | None


class Schedule:
    """A checked cron expression in a checked timezone."""

    def __init__(self, expression: str, timezone: str | None, *, seconds: bool) -> None:
        self.expression, self.seconds = expression.strip(), seconds
        self.zone = _zone(timezone)
        self._check()

    def _check(self) -> None:
        count = len(self.expression.split())
        if count == 6 and not self.seconds:
            raise Invalid(
                f"schedule: '{self.expression}' has 6 fields; second-level schedules are "
                "off (set BROKER_CRON_SECONDS=true to allow them, seconds first)"
            )
        if count not in (1, 5, 6) or not croniter.is_valid(
            self.expression, second_at_beginning=count == 6
        ):
            raise Invalid(
                f"schedule: '{self.expression}' is not a cron expression "
                "(minute hour day-of-month month day-of-week)"
            )
        self.after(datetime.now(UTC))  # one that never fires (February 30th) is refused

    def after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment`, in UTC."""
        local = moment.astimezone(self.zone)
        six = len(self.expression.split()) == 6
        try:
            tick: datetime = croniter(self.expression, local, second_at_beginning=six).get_next(
                datetime
            )
        except CroniterBadDateError:
            raise Invalid(f"schedule: '{self.expression}' never fires") from None
        return tick.astimezone(UTC)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"timezone: '{name}' is not an IANA timezone") from None


def _utc(moment: datetime | None) -> datetime | None:
    """A client's time; one without an offset is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def next_run(schedule: Schedule, end_time: datetime | None, now: datetime) -> datetime | None:
    """The first tick after `now`, unless it falls after `end_time`."""
    tick = schedule.after(now)
    return None if end_time is not None and tick > end_time else tick


class CronService:
    def __init__(self, store: CronStore, service: BrokerService, *, seconds: bool) -> None:
        self.store, self.service, self.seconds = store, service, seconds

    # -- the API's side -------------------------------------------------------------------

    async def create(
        self,
        thread_id: UUID | None,
        spec: CronSpec,
        user: User | None,
        thread_filter: Filter | None = None,
    ) -> Cron:
        """Checks everything before anything is written: the schedule, timezone and end
        time, the assistant and (for a thread's cron) the thread."""
        schedule = Schedule(spec.schedule, spec.timezone, seconds=self.seconds)
        end_time = _future_end(spec.end_time)
        check_request(thread_id, self._request_of(spec.payload, spec.assistant_id))
        self.service.check_webhook(spec.payload.get("webhook"))
        assistant = await self.service.resolve_assistant(spec.assistant_id)
        if thread_id is not None:
            await self.service.threads.get(thread_id, filter=thread_filter)
        return await self.store.create(
            {
                "cron_id": uuid4(),
                "assistant_id": assistant.assistant_id,
                "thread_id": thread_id,
                "schedule": schedule.expression,
                "timezone": spec.timezone,
                "end_time": end_time,
                "enabled": spec.enabled,
                "on_run_completed": None if thread_id else spec.on_run_completed or "delete",
                "payload": spec.payload,
                "metadata": spec.metadata,
                "user_id": user.identity if user else None,
                "auth_user": user.to_dict() if user else None,
                "next_run_date": next_run(schedule, end_time, datetime.now(UTC)),
            }
        )

    async def patch(self, cron_id: UUID, changes: CronChanges, filter: Filter | None) -> Cron:
        cron = await self.store.get(cron_id, filter)
        given = changes.given
        if "on_run_completed" in given and cron.thread_id is not None:
            raise Invalid("on_run_completed: a thread's cron runs on its thread; it has none")
        columns = dict(given)
        if "end_time" in given:
            columns["end_time"] = _future_end(given["end_time"])
        timing = {"schedule", "timezone", "end_time", "enabled"}
        if timing & set(given):
            schedule = Schedule(
                given.get("schedule", cron.schedule),
                given.get("timezone", cron.timezone),
                seconds=self.seconds,
            )
            end_time = columns.get("end_time", cron.end_time)
            columns["schedule"] = schedule.expression
            columns["next_run_date"] = next_run(schedule, end_time, datetime.now(UTC))
        if changes.payload or changes.metadata:
            payload = {**cron.payload, **changes.payload}
            payload["metadata"] = {**payload.get("metadata", {}), **(changes.metadata or {})}
            check_request(cron.thread_id, self._request_of(payload, str(cron.assistant_id)))
            self.service.check_webhook(payload.get("webhook"))
            columns["payload"] = payload
        return await self.store.update(cron_id, columns, changes.metadata, filter)

    def assistant_key(self, assistant_id: str) -> UUID:
        """The assistant a search names: its UUID, or a graph id (its system assistant)."""
        if assistant_id in self.service.graphs:
            return system_assistant_id(assistant_id)
        try:
            return UUID(assistant_id)
        except ValueError:
            raise Invalid(
                f"assistant_id: '{assistant_id}' is neither an assistant UUID nor a graph id"
            ) from None

    # -- the scheduler ------------------------------------------------------------------

    async def fire_due(self) -> int:
        """Fires every due cron (a batch per transaction); the runs fired."""
        total = 0
        while True:
            fired = await self.service.ledger.fire_crons(BATCH, self._plan)
            for f in fired:
                await self.service.accepted(f.run, f.cancelled, f.cron.thread_id)
                log.info(
                    "cron %s fired run %s (tick %s)",
                    f.cron.cron_id,
                    f.run.run_id,
                    f.run.metadata.get(FIRE_TIME_KEY),
                )
            total += len(fired)
            if len(fired) < BATCH:
                return total

    def _plan(self, cron: Cron, assistant: Assistant, now: datetime) -> Firing:
        """The run a due cron submits for its tick, and its next tick after `now`.

        A cron stored before a setting changed (seconds off) or whose run cannot be built
        is not fired, but still advanced: one bad cron must not stall the others."""
        try:
            schedule = Schedule(cron.schedule, cron.timezone, seconds=self.seconds)
            upcoming = next_run(schedule, cron.end_time, now)
        except Invalid as exc:
            log.error("cron %s: %s; paused until it is changed", cron.cron_id, exc.detail)
            return Firing(None, None)
        try:
            assert cron.next_run_date is not None  # only due crons are planned
            request = self._firing_request(cron, cron.next_run_date)
            return Firing(submit_for(cron.thread_id, request, assistant, None), upcoming)
        except Exception as exc:
            log.error("cron %s: its run could not be built (%r); skipped", cron.cron_id, exc)
            return Firing(None, upcoming)

    def _firing_request(self, cron: Cron, tick: datetime) -> RunRequest:
        payload = dict(cron.payload)
        payload["metadata"] = {
            **payload.get("metadata", {}),
            CRON_ID_KEY: str(cron.cron_id),
            FIRE_TIME_KEY: tick.astimezone(UTC).isoformat(),
        }
        if cron.auth_user is not None:  # the creator, as their own runs carry them
            config = dict(payload.get("config") or {})
            user = users.configurable(User(cron.auth_user))
            config["configurable"] = {**(config.get("configurable") or {}), **user}
            payload["config"] = config
        payload["on_completion"] = cron.on_run_completed or "delete"
        return self._request_of(payload, str(cron.assistant_id))

    @staticmethod
    def _request_of(payload: dict[str, Any], assistant_id: str) -> RunRequest:
        known = {k: v for k, v in payload.items() if k in _REQUEST_FIELDS - {"assistant_id"}}
        strategy = MultitaskStrategy(known.pop("multitask_strategy", "enqueue"))
        return RunRequest(assistant_id=assistant_id, multitask_strategy=strategy, **known)


def _future_end(end_time: datetime | None) -> datetime | None:
    end_time = _utc(end_time)
    if end_time is not None and end_time <= datetime.now(UTC):
        raise Invalid(f"end_time: {end_time.isoformat()} is in the past")
    return end_time
