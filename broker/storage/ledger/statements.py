"""The ledger's statements, each built once per backend with bind parameters.

Parameters are named `p_…`. Conditions shared by several statements (the claim test,
a thread's head run, its active runs) are spelled once in `conditions`.
"""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    Boolean,
    Delete,
    Insert,
    Integer,
    Select,
    Text,
    Update,
    bindparam,
    case,
    delete,
    exists,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningDelete

from broker.models import RunStatus, ThreadStatus
from broker.storage.ledger.spelling import Spelling
from broker.storage.runs import active_on, head_of, on_visible_thread, owned
from broker.storage.tables import (
    UtcDateTime,
    assistants,
    checkpoint_writes,
    checkpoints,
    crons,
    runs,
    threads,
    webhook_outbox,
)
from broker.storage.visibility import visible

PENDING = RunStatus.PENDING.value
RUNNING = RunStatus.RUNNING.value
RUN_COLUMNS = (
    "run_id",
    "thread_id",
    "assistant_id",
    "status",
    "metadata",
    "kwargs",
    "multitask_strategy",
)


def _p(column: Any, name: str | None = None) -> Any:
    return bindparam(name or f"p_{column.name}", type_=column.type)


def _run_id() -> Any:
    return _p(runs.c.run_id)


def _thread_id() -> Any:
    return _p(threads.c.thread_id)


def _owned() -> Any:
    return owned(_run_id(), _p(runs.c.attempt))


# -- threads ----------------------------------------------------------------------------


@functools.cache
def create_thread(s: Spelling) -> Insert:
    """An ordinary thread, unless its id exists (`if_not_exists: create`), with the
    ttl bound as `p_ttl_strategy`, `p_ttl_minutes` and `p_ttl` (an interval; NULLs: none)."""
    now = s.now()
    made: Insert = (
        (postgresql.insert(threads) if s.postgres else sqlite.insert(threads))
        .values(
            thread_id=_thread_id(),
            metadata=bindparam("p_metadata", {}, type_=threads.c.metadata.type),
            created_at=now,
            updated_at=now,
            state_updated_at=now,
            ttl_strategy=_p(threads.c.ttl_strategy),
            ttl_minutes=_p(threads.c.ttl_minutes),
            expires_at=s.later("p_ttl"),
        )
        .on_conflict_do_nothing()
    )
    return made


@functools.cache
def insert_temporary(s: Spelling) -> Insert:
    """A stateless run's own thread: busy, hidden from searches, tagged with `p_tags`."""
    now = s.now()
    return threads.insert().values(
        thread_id=_thread_id(),
        metadata=_p(threads.c.metadata, "p_tags"),
        status=ThreadStatus.BUSY.value,
        temporary=True,
        created_at=now,
        updated_at=now,
        state_updated_at=now,
    )


@functools.cache
def mark_busy(s: Spelling) -> Update:
    """A run was submitted: the thread is busy and remembers `p_tags` (graph, assistant).

    Takes the thread's row lock; returns nothing if there is no such ordinary thread, or
    if the auth filter (`p_auth`) hides it.
    """
    return (
        update(threads)
        .where(
            threads.c.thread_id == _thread_id(),
            threads.c.temporary.is_(False),
            visible(s.postgres, threads.c.metadata),
        )
        .values(
            status=ThreadStatus.BUSY.value,
            metadata=s.merged(threads.c.metadata, "p_tags"),
            updated_at=s.now(),
        )
        .returning(threads.c.thread_id)
    )


@functools.cache
def lock_thread(s: Spelling) -> Select[Any]:
    return select(threads).where(threads.c.thread_id == _thread_id()).with_for_update()


@functools.cache
def lock_visible_thread(s: Spelling) -> Select[Any]:
    """The thread, locked, if the auth filter (`p_auth`) lets the caller see it."""
    return lock_thread(s).where(visible(s.postgres, threads.c.metadata))


@functools.cache
def record(s: Spelling) -> Update:
    """What a run or an edit left on the thread (busy while runs remain there; no
    `p_values` keeps the thread's values): returns the thread's next due run, if any."""
    thread_id = _thread_id()
    busy = exists(active_on(thread_id))
    head = head_of(thread_id, s.now()).subquery("head")
    next_due = select(head.c.run_id).where(head.c.status == PENDING).scalar_subquery()
    keep_values = bindparam("p_keep_values", type_=Boolean)
    return (
        update(threads)
        .where(threads.c.thread_id == thread_id)
        .values(
            status=case((busy, ThreadStatus.BUSY.value), else_=bindparam("p_resting", type_=Text)),
            values=case((keep_values, threads.c["values"]), else_=_p(threads.c["values"])),
            interrupts=_p(threads.c.interrupts),
            error=_p(threads.c.error),
            temporary=False,  # a stateless run's thread it keeps becomes an ordinary one
            updated_at=s.now(),
            state_updated_at=s.now(),
        )
        .returning(next_due)
    )


@functools.cache
def refresh_status(s: Spelling) -> Update:
    """After pending runs were cancelled: busy while runs remain, else `p_resting`."""
    thread_id = _thread_id()
    busy = exists(active_on(thread_id))
    return (
        update(threads)
        .where(threads.c.thread_id == thread_id)
        .values(
            status=case((busy, ThreadStatus.BUSY.value), else_=bindparam("p_resting", type_=Text)),
            updated_at=s.now(),
        )
        .returning(busy)
    )


@functools.cache
def delete_thread(s: Spelling) -> ReturningDelete[Any]:
    """A thread and, by cascade, its runs."""
    return delete(threads).where(threads.c.thread_id == _thread_id()).returning(threads.c.thread_id)


@functools.cache
def delete_checkpoints(s: Spelling) -> tuple[Delete, Delete]:
    key = bindparam("p_key", type_=Text)
    return (
        delete(checkpoint_writes).where(checkpoint_writes.c.thread_id == key),
        delete(checkpoints).where(checkpoints.c.thread_id == key),
    )


@functools.cache
def copy_thread(s: Spelling) -> Insert:
    """A new thread with the source's metadata (`p_metadata` merged in), config and state
    (`p_status` as it rests); the source must pass the auth filter (`p_auth`)."""
    now = s.now()
    source = select(
        bindparam("p_copy_id", type_=threads.c.thread_id.type),
        s.merged(threads.c.metadata, "p_metadata").label("metadata"),
        threads.c.config,
        threads.c["values"],
        threads.c.interrupts,
        threads.c.error,
        bindparam("p_status", type_=Text),
        now.label("created_at"),
        now.label("updated_at"),
        now.label("state_updated_at"),
    ).where(
        threads.c.thread_id == _thread_id(),
        threads.c.temporary.is_(False),
        visible(s.postgres, threads.c.metadata),
    )
    names = ["thread_id", "metadata", "config", "values", "interrupts", "error", "status"]
    stamps = ["created_at", "updated_at", "state_updated_at"]
    return threads.insert().from_select([*names, *stamps], source).returning(threads)


# -- runs -------------------------------------------------------------------------------


@functools.cache
def insert_run(s: Spelling, *, unless_active: bool, after: CTE | None = None) -> Insert:
    """A pending run, due after `p_delay`; with `unless_active`, only if no run is pending
    or running on its thread (read in this statement, after the thread's lock); with
    `after` (a CTE of the same statement), only if that returned a row."""
    row = select(
        *(_p(runs.c[c]) for c in RUN_COLUMNS),
        s.later("p_delay").label("created_at"),
        s.now().label("updated_at"),
    )
    if unless_active:
        row = row.where(~exists(active_on(_p(runs.c.thread_id))))
    if after is not None:
        row = row.where(exists(select(after)))
    names = [*RUN_COLUMNS, "created_at", "updated_at"]
    return runs.insert().from_select(names, row).returning(runs)


@functools.cache
def lock_run(s: Spelling) -> Select[Any]:
    """A run (cancel, delete: the API's side), if the auth filter (`p_auth`) lets the
    caller see its thread."""
    query = select(runs).where(runs.c.run_id == _run_id(), on_visible_thread(s.postgres))
    return query.with_for_update(of=runs)


@functools.cache
def lock_active(s: Spelling, *, of_thread: bool, scoped: bool = False) -> Select[Any]:
    """Pending or running runs (`p_pending`/`p_running` say which), oldest first, locked;
    of one thread (`p_thread_id`) or of all; `scoped`: only on threads the auth filter
    (`p_auth`) lets the caller see."""
    pending = bindparam("p_pending", type_=Boolean) & (runs.c.status == PENDING)
    running = bindparam("p_running", type_=Boolean) & (runs.c.status == RUNNING)
    query = select(runs).where(pending | running)
    if scoped:
        query = query.where(on_visible_thread(s.postgres))
    if of_thread:
        query = query.where(runs.c.thread_id == _p(runs.c.thread_id))
    return query.order_by(runs.c.created_at, runs.c.run_id).with_for_update()


@functools.cache
def request_cancel(s: Spelling) -> Update:
    action = bindparam("p_action", type_=Text)
    return update(runs).where(runs.c.run_id == _run_id()).values(cancel_action=action)


@functools.cache
def set_status(s: Spelling, *, fenced: bool) -> Update:
    """Ends a run with `p_status` (only while `p_attempt` owns it, if `fenced`)."""
    return (
        update(runs)
        .where(_owned() if fenced else runs.c.run_id == _run_id())
        .values(status=_p(runs.c.status), lease_until=None, updated_at=s.now())
        .returning(runs.c.thread_id)
    )


@functools.cache
def delete_run(s: Spelling, *, fenced: bool) -> ReturningDelete[Any]:
    condition = _owned() if fenced else runs.c.run_id == _run_id()
    return delete(runs).where(condition).returning(runs.c.thread_id)


@functools.cache
def release(s: Spelling, *, fenced: bool) -> Update:
    """Back to pending for another worker (only while `p_attempt` owns it, if `fenced`)."""
    return (
        update(runs)
        .where(_owned() if fenced else runs.c.run_id == _run_id())
        .values(status=PENDING, lease_until=None, worker_id=None, updated_at=s.now())
        .returning(runs.c.run_id)
    )


@functools.cache
def heartbeat(s: Spelling) -> Update:
    """Renews the lease by `p_lease`; returns a cancel asked of the run since."""
    return (
        update(runs)
        .where(_owned())
        .values(lease_until=s.later("p_lease"))
        .returning(runs.c.cancel_action)
    )


@functools.cache
def lock_thread_of(s: Spelling) -> Select[Any]:
    """The run's thread (id, temporary), row-locked so that claims on it take turns."""
    return (
        select(threads.c.thread_id, threads.c.temporary)
        .join(runs, runs.c.thread_id == threads.c.thread_id)
        .where(runs.c.run_id == _run_id())
        .with_for_update(of=threads)
    )


@functools.cache
def head(s: Spelling) -> Select[UUID, str]:
    return head_of(_thread_id(), s.now())


def starting(s: Spelling) -> dict[str, Any]:
    """A new attempt of a run: the bumped attempt is the fencing token."""
    return {
        "status": RUNNING,
        "attempt": runs.c.attempt + 1,
        "lease_until": s.later("p_lease"),
        "worker_id": _p(runs.c.worker_id),
        "started_at": s.now(),
        "updated_at": s.now(),
    }


@functools.cache
def start(s: Spelling) -> Update:
    """Starts the pending run `p_run_id`."""
    return (
        update(runs)
        .where(runs.c.run_id == _run_id(), runs.c.status == PENDING)
        .values(**starting(s))
        .returning(runs)
    )


@functools.cache
def lock_expired(s: Spelling) -> Select[Any]:
    """Running runs whose lease ran out: their worker died or stalled."""
    return (
        select(runs)
        .where(runs.c.status == RUNNING, runs.c.lease_until < s.now())
        .order_by(runs.c.created_at)
        .with_for_update(skip_locked=True)
    )


@functools.cache
def lock_orphans(s: Spelling) -> Select[Any]:
    """Running runs of the worker `p_worker_id`, which died (its liveness key expired)."""
    return (
        select(runs)
        .where(runs.c.status == RUNNING, runs.c.worker_id == _p(runs.c.worker_id))
        .order_by(runs.c.created_at)
        .with_for_update(skip_locked=True)
    )


@functools.cache
def pending(s: Spelling) -> Select[Any]:
    """Every pending run (id, when it is due), oldest first: to wake them all again."""
    return (
        select(runs.c.run_id, runs.c.created_at)
        .where(runs.c.status == PENDING)
        .order_by(runs.c.created_at)
    )


@functools.cache
def touch_stale(s: Spelling) -> Update:
    """Due pending runs untouched for `p_older` (their wake-up may be lost): marked seen."""
    stale = (
        select(runs.c.run_id)
        .where(
            runs.c.status == PENDING,
            runs.c.created_at <= s.now(),
            runs.c.updated_at < s.later("p_older"),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(runs)
        .where(runs.c.run_id.in_(stale))
        .values(updated_at=s.now())
        .returning(runs.c.run_id)
    )


# -- crons ------------------------------------------------------------------------------


@functools.cache
def clock(s: Spelling) -> Select[Any]:
    """The transaction's time (Postgres': one clock for every process)."""
    return select(s.now().label("now"))


def _due(s: Spelling) -> Any:
    """Enabled, its next tick come, and not past its end (the (enabled, next_run_date)
    index finds them)."""
    due = crons.c.next_run_date <= s.now()
    within = crons.c.end_time.is_(None) | (crons.c.next_run_date <= crons.c.end_time)
    return crons.c.enabled.is_(True) & due & within


@functools.cache
def any_due_cron(s: Spelling) -> Select[Any]:
    """Whether a cron is due: the scheduler's one query when none is."""
    return select(crons.c.cron_id).where(_due(s)).limit(1)


@functools.cache
def lock_due_crons(s: Spelling) -> Select[Any]:
    """Up to `p_limit` due crons, locked; those another scheduler holds are skipped (it
    is firing them), never waited for."""
    return (
        select(crons)
        .where(_due(s))
        .order_by(crons.c.next_run_date)
        .limit(bindparam("p_limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )


@functools.cache
def assistant_by_id(s: Spelling) -> Select[Any]:
    return select(assistants).where(
        assistants.c.assistant_id
        == bindparam("p_assistant_id", type_=assistants.c.assistant_id.type)
    )


@functools.cache
def advance_cron(s: Spelling) -> Update:
    """The cron's next tick (`p_next_run_date`; NULL when none is left)."""
    return (
        update(crons)
        .where(crons.c.cron_id == bindparam("p_cron_id", type_=crons.c.cron_id.type))
        .values(next_run_date=bindparam("p_next_run_date", type_=UtcDateTime()))
    )


# -- webhooks ---------------------------------------------------------------------------

HOOK_COLUMNS = ("delivery_id", "run_id", "thread_id", "url", "payload")
_HOOK_PARAMS = ("p_hook_id", "p_hook_run_id", "p_hook_thread_id", "p_hook_url", "p_hook_payload")


def _hook_row(s: Spelling) -> list[Any]:
    binds = [
        bindparam(name, type_=webhook_outbox.c[column].type)
        for column, name in zip(HOOK_COLUMNS, _HOOK_PARAMS, strict=True)
    ]
    return [*binds, s.now(), s.now()]


def delivery_from(s: Spelling, source: Any) -> Insert:
    """The webhook delivery bound as `p_hook_…`, for each row of `source` (the run that
    ended: nothing when another attempt owns it), if there is one (`p_hook_id`)."""
    hook_id = bindparam("p_hook_id", type_=webhook_outbox.c.delivery_id.type)
    row = select(*_hook_row(s)).select_from(source).where(hook_id.is_not(None))
    names = [*HOOK_COLUMNS, "next_attempt_at", "created_at"]
    return webhook_outbox.insert().from_select(names, row)


@functools.cache
def enqueue_delivery(s: Spelling) -> Insert:
    """The webhook delivery bound as `p_hook_…` (in the transaction that ended its run)."""
    names = [*HOOK_COLUMNS, "next_attempt_at", "created_at"]
    return webhook_outbox.insert().from_select(names, select(*_hook_row(s)))
