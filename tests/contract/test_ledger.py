"""The ledger's contract, on both backends: one running run per thread, oldest due run
first, fenced ends, refusals that change nothing (Postgres folds submit, claim and finish
into single statements; SQLite runs them as transactions: the rules are the same)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import NotFound, ThreadBusy
from broker.models import (
    CancelAction,
    MultitaskStrategy,
    Run,
    RunStatus,
    ThreadResult,
    ThreadStatus,
)
from broker.storage import visibility
from broker.storage.ledger import Ledger, open_ledger
from broker.storage.ledger.outcomes import Claimed, Failure, Released, Submit
from broker.storage.tables import runs, threads

LEASE = timedelta(seconds=30)


class Refusal(Enum):
    NO_THREAD = "no_thread"
    BUSY = "busy"


class Store:
    """The ledger and its engine, with the submit/finish shapes these tests read best."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.ledger: Ledger = open_ledger(engine)

    async def insert_stateless(self, values: dict[str, Any], tags: Any) -> Run:
        run, _ = await self.ledger.submit(Submit(row=values, tags=tags, temporary=True))
        return run

    async def insert_threaded(
        self, values: dict[str, Any], tags: Any, *, unless_active: bool
    ) -> Run | Refusal:
        strategy = MultitaskStrategy.REJECT if unless_active else MultitaskStrategy.ENQUEUE
        try:
            submit = Submit(row=values, tags=tags, temporary=False, strategy=strategy)
            run, _ = await self.ledger.submit(submit)
        except NotFound:
            return Refusal.NO_THREAD
        except ThreadBusy:
            return Refusal.BUSY
        return run

    async def claim(self, run_id: uuid.UUID, worker_id: str, lease: timedelta) -> Claimed | None:
        return await self.ledger.claim(run_id, worker_id, lease)

    async def finish_stateless(self, run_id: uuid.UUID, attempt: int, status: RunStatus) -> bool:
        done = ThreadResult(ThreadStatus.IDLE)
        return (await self.ledger.finish(run_id, attempt, status, done, drop_thread=True)).owned

    async def finish_threaded(
        self, run_id: uuid.UUID, attempt: int, status: RunStatus, result: ThreadResult
    ) -> tuple[bool, uuid.UUID | None]:
        finished = await self.ledger.finish(run_id, attempt, status, result, drop_thread=False)
        return finished.owned, finished.wake


@pytest.fixture
def store(either_engine: AsyncEngine) -> Store:
    return Store(either_engine)


def _stamps(delay: float = -1.0) -> dict[str, datetime]:
    # Explicit times: the migrated server default, now(), is not a SQLite function.
    when = datetime.now(UTC) + timedelta(seconds=delay)
    return {"created_at": when, "updated_at": when}


async def _thread(engine: AsyncEngine) -> uuid.UUID:
    thread_id = uuid.uuid4()
    async with engine.begin() as conn:
        values = {**_stamps(), "state_updated_at": datetime.now(UTC)}
        await conn.execute(insert(threads).values(thread_id=thread_id, status="busy", **values))
    return thread_id


async def _pending(
    engine: AsyncEngine, thread_id: uuid.UUID, delay: float = -1.0, **columns: Any
) -> uuid.UUID:
    run_id = uuid.uuid4()
    row = {"metadata": {}, "kwargs": {}, "multitask_strategy": "enqueue", **columns}
    async with engine.begin() as conn:
        await conn.execute(
            insert(runs).values(
                run_id=run_id,
                thread_id=thread_id,
                assistant_id=uuid.uuid4(),
                status="pending",
                **row,
                **_stamps(delay),
            )
        )
    return run_id


async def _count(engine: AsyncEngine, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


def _stateless_values(run_id: uuid.UUID, thread_id: uuid.UUID) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "thread_id": thread_id,
        "assistant_id": uuid.uuid4(),
        "status": "pending",
        "metadata": {"m": 1},
        "kwargs": {"temporary": True},
        "multitask_strategy": "enqueue",
    }


async def test_stateless_submit_creates_a_hidden_busy_thread(store: Store) -> None:
    run_id, thread_id = uuid.uuid4(), uuid.uuid4()
    run = await store.insert_stateless(_stateless_values(run_id, thread_id), {"graph_id": "g"})
    assert (run.run_id, run.thread_id, run.status) == (run_id, thread_id, RunStatus.PENDING)
    assert run.metadata == {"m": 1} and run.kwargs == {"temporary": True}
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(threads).where(threads.c.thread_id == thread_id))).one()
    assert (row.status, row.temporary, row.metadata) == ("busy", True, {"graph_id": "g"})


async def test_concurrent_claims_start_one_run_per_thread_oldest_first(store: Store) -> None:
    thread_id = await _thread(store.engine)
    first = await _pending(store.engine, thread_id, delay=-2.0)
    second = await _pending(store.engine, thread_id)
    claims = await asyncio.gather(
        *(store.claim(rid, f"w{i}", LEASE) for i, rid in enumerate([second, first] * 3))
    )
    started = [c for c in claims if c is not None]
    assert len(started) == 1
    run, temporary = started[0].run, started[0].temporary
    assert (run.run_id, run.status, run.attempt, temporary) == (first, RunStatus.RUNNING, 1, False)
    assert await _count(store.engine, runs, thread_id=thread_id, status="running") == 1
    # While it runs, the thread's next run waits, whoever is woken for it.
    assert await store.claim(second, "w9", LEASE) is None


async def test_a_run_not_yet_due_is_not_claimed(store: Store) -> None:
    thread_id = await _thread(store.engine)
    later = await _pending(store.engine, thread_id, delay=60.0)
    assert await store.claim(later, "w", LEASE) is None
    assert await store.claim(uuid.uuid4(), "w", LEASE) is None  # no such run


async def test_finishing_a_stateless_run_is_fenced_and_takes_its_thread(
    store: Store,
) -> None:
    run_id, thread_id = uuid.uuid4(), uuid.uuid4()
    await store.insert_stateless(_stateless_values(run_id, thread_id), {})
    claimed = await store.claim(run_id, "w", LEASE)
    assert claimed is not None and claimed.temporary is True
    attempt = claimed.run.attempt
    assert not await store.finish_stateless(run_id, attempt + 1, RunStatus.SUCCESS)
    assert (
        await _count(store.engine, threads, thread_id=thread_id) == 1
    )  # a lost claim changes nothing
    assert await store.finish_stateless(run_id, attempt, RunStatus.SUCCESS)
    assert await _count(store.engine, threads, thread_id=thread_id) == 0
    assert await _count(store.engine, runs, run_id=run_id) == 0
    assert not await store.finish_stateless(run_id, attempt, RunStatus.SUCCESS)


def _threaded_values(thread_id: uuid.UUID) -> dict[str, Any]:
    return {
        **_stateless_values(uuid.uuid4(), thread_id),
        "kwargs": {},
        "multitask_strategy": "reject",
    }


async def _thread_row(engine: AsyncEngine, thread_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(threads).where(threads.c.thread_id == thread_id))).one()


async def test_threaded_submit_tags_the_thread_and_rejects_while_a_run_is_active(
    store: Store,
) -> None:
    thread_id = await _thread(store.engine)
    run = await store.insert_threaded(
        _threaded_values(thread_id), {"graph_id": "g"}, unless_active=True
    )
    assert isinstance(run, Run) and (run.thread_id, run.status) == (thread_id, RunStatus.PENDING)
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.metadata) == ("busy", {"graph_id": "g"})

    refused = await store.insert_threaded(
        _threaded_values(thread_id), {"other": 1}, unless_active=True
    )
    assert refused is Refusal.BUSY
    assert (await _thread_row(store.engine, thread_id)).metadata == {"graph_id": "g"}  # rolled back
    queued = await store.insert_threaded(_threaded_values(thread_id), {}, unless_active=False)
    assert isinstance(queued, Run)  # `enqueue` waits its turn
    assert await _count(store.engine, runs, thread_id=thread_id) == 2


async def test_concurrent_rejecting_submits_accept_exactly_one(store: Store) -> None:
    thread_id = await _thread(store.engine)
    made = await asyncio.gather(
        *(
            store.insert_threaded(_threaded_values(thread_id), {}, unless_active=True)
            for _ in range(6)
        )
    )
    assert sum(isinstance(m, Run) for m in made) == 1
    assert made.count(Refusal.BUSY) == 5
    assert await _count(store.engine, runs, thread_id=thread_id) == 1


async def test_threaded_submit_needs_an_ordinary_thread(store: Store) -> None:
    missing = await store.insert_threaded(_threaded_values(uuid.uuid4()), {}, unless_active=False)
    assert missing is Refusal.NO_THREAD
    hidden = uuid.uuid4()  # a stateless run's thread
    await store.insert_stateless(_stateless_values(uuid.uuid4(), hidden), {})
    assert await store.insert_threaded(_threaded_values(hidden), {}, unless_active=False) is (
        Refusal.NO_THREAD
    )


async def test_finishing_a_threaded_run_settles_its_thread(store: Store) -> None:
    thread_id = await _thread(store.engine)
    first = await _pending(store.engine, thread_id, delay=-2.0)
    second = await _pending(store.engine, thread_id)
    claimed = await store.claim(first, "w", LEASE)
    assert claimed is not None
    attempt = claimed.run.attempt
    done = ThreadResult(ThreadStatus.IDLE, values={"v": 1}, error=None)
    assert await store.finish_threaded(first, attempt + 1, RunStatus.SUCCESS, done) == (False, None)
    assert await _count(store.engine, runs, run_id=first, status="running") == 1  # unchanged

    # Another run waits on the thread: it stays busy, and that run is the one to wake.
    assert await store.finish_threaded(first, attempt, RunStatus.SUCCESS, done) == (True, second)
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.values) == ("busy", {"v": 1})
    assert await _count(store.engine, runs, run_id=first, status="success") == 1

    # The last run: the thread rests as the run left it; no values keeps the earlier ones.
    claimed = await store.claim(second, "w", LEASE)
    assert claimed is not None
    paused = ThreadResult(ThreadStatus.INTERRUPTED, values=None, interrupts={"t": [{"v": 2}]})
    assert await store.finish_threaded(second, claimed.run.attempt, RunStatus.SUCCESS, paused) == (
        True,
        None,
    )
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.values, row.interrupts, row.error) == (
        "interrupted",
        {"v": 1},
        {"t": [{"v": 2}]},
        None,
    )


async def _running(store: Store, thread_id: uuid.UUID, lease: timedelta = LEASE) -> Run:
    run_id = await _pending(store.engine, thread_id, delay=-5.0)
    claimed = await store.claim(run_id, "w", lease)
    assert claimed is not None
    return claimed.run


def _failure(error: str) -> Failure:
    result = ThreadResult(ThreadStatus.ERROR, error={"error": error})
    return Failure(result, drop_thread=False, error={"error": error})


async def test_recovering_counts_each_run_once(store: Store) -> None:
    thread_id = await _thread(store.engine)
    orphan = await _running(store, thread_id)
    waiting = await _pending(store.engine, thread_id)
    recovered = await store.ledger.recover_all()  # (the database may hold other tests' runs)
    assert [r.run_id for r in recovered.orphans if r.thread_id == thread_id] == [orphan.run_id]
    assert [r.run_id for r in recovered.waiting if r.thread_id == thread_id] == [waiting]
    assert await _count(store.engine, runs, thread_id=thread_id, status="pending") == 2


async def test_a_hand_back_past_the_last_attempt_ends_the_run_in_error(store: Store) -> None:
    thread_id = await _thread(store.engine)
    run = await _running(store, thread_id)
    released = await store.ledger.release(run, run.attempt, _failure("WorkerLost"))
    assert released is Released.FAILED
    assert await _count(store.engine, runs, run_id=run.run_id, status="error") == 1
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.error) == ("error", {"error": "WorkerLost"})
    assert await store.ledger.release(run, run.attempt, None) is Released.LOST


async def test_a_hand_back_makes_the_run_pending_once(store: Store) -> None:
    thread_id = await _thread(store.engine)
    run = await _running(store, thread_id)
    assert await store.ledger.release(run, run.attempt + 1, None) is Released.LOST
    assert await store.ledger.release(run, run.attempt, None) is Released.RELEASED
    assert await store.ledger.release(run, run.attempt, None) is Released.LOST
    again = await store.claim(run.run_id, "w2", LEASE)
    assert again is not None and again.run.attempt == run.attempt + 1


async def test_a_cancel_asked_of_a_handed_back_run_reaches_its_next_attempt(
    store: Store,
) -> None:
    """The cancel signal went to the attempt that was handed back; the next claim carries
    the request so the worker stops the run instead of running it again."""
    thread_id = await _thread(store.engine)
    run = await _running(store, thread_id)
    cancelled = await store.ledger.cancel([run.run_id], CancelAction.INTERRUPT)
    assert [(r.run_id, a) for r, a in cancelled.signalled] == [(run.run_id, CancelAction.INTERRUPT)]
    assert await store.ledger.release(run, run.attempt, None) is Released.RELEASED
    again = await store.claim(run.run_id, "w2", LEASE)
    assert again is not None and again.cancel_action is CancelAction.INTERRUPT
    untouched = await _pending(store.engine, await _thread(store.engine), delay=-5.0)
    claimed = await store.claim(untouched, "w", LEASE)
    assert claimed is not None and claimed.cancel_action is None


async def test_deleting_a_thread_reports_its_active_runs(store: Store) -> None:
    thread_id = await _thread(store.engine)
    running = await _running(store, thread_id)
    waiting = await _pending(store.engine, thread_id)
    cancelled = await store.ledger.delete_thread(thread_id)
    assert [r.run_id for r in cancelled.ended] == [running.run_id, waiting]
    assert [(r.run_id, a.value) for r, a in cancelled.signalled] == [(running.run_id, "interrupt")]
    assert await _count(store.engine, threads, thread_id=thread_id) == 0
    assert await _count(store.engine, runs, thread_id=thread_id) == 0
    with pytest.raises(NotFound):
        await store.ledger.delete_thread(thread_id)


@pytest.mark.parametrize("strategy", [MultitaskStrategy.INTERRUPT, MultitaskStrategy.ROLLBACK])
async def test_interrupt_and_rollback_cancel_what_came_before(
    store: Store, strategy: MultitaskStrategy
) -> None:
    thread_id = await _thread(store.engine)
    running = await _running(store, thread_id)
    waiting = await _pending(store.engine, thread_id)
    submit = Submit(row=_threaded_values(thread_id), tags={}, temporary=False, strategy=strategy)
    run, cancelled = await store.ledger.submit(submit)
    assert [r.run_id for r in cancelled.ended] == [waiting]
    assert [(r.run_id, a.value) for r, a in cancelled.signalled] == [
        (running.run_id, strategy.value)
    ]
    assert cancelled.wake == []  # the running run still holds the thread
    left = 0 if strategy == MultitaskStrategy.ROLLBACK else 1
    assert await _count(store.engine, runs, run_id=waiting, status="interrupted") == left
    assert await _count(store.engine, runs, run_id=run.run_id, status="pending") == 1
    assert (await _thread_row(store.engine, thread_id)).status == "busy"


async def test_cancelling_a_pending_run_wakes_the_next_one(store: Store) -> None:
    thread_id = await _thread(store.engine)
    first = await _pending(store.engine, thread_id, delay=-2.0)
    second = await _pending(store.engine, thread_id)
    cancelled = await store.ledger.cancel([first], CancelAction.INTERRUPT)
    assert [r.run_id for r in cancelled.ended] == [first] and cancelled.wake == [second]
    with pytest.raises(NotFound):
        await store.ledger.cancel([first], CancelAction.INTERRUPT)  # no longer active


async def test_sweeping_retries_expired_leases_then_fails_them(store: Store) -> None:
    thread_id = await _thread(store.engine)
    run = await _running(store, thread_id, lease=timedelta(seconds=-1))
    swept = await store.ledger.sweep(2, timedelta(seconds=60), lambda r: _failure("WorkerLost"))
    assert swept is not None and run.run_id in [r.run_id for r in swept.retry]
    again = await store.claim(run.run_id, "w", timedelta(seconds=-1))
    assert again is not None and again.run.attempt == 2
    swept = await store.ledger.sweep(2, timedelta(seconds=60), lambda r: _failure("WorkerLost"))
    assert swept is not None and run.run_id in [r.run_id for r, _ in swept.failed]
    assert await _count(store.engine, runs, run_id=run.run_id, status="error") == 1
    assert (await _thread_row(store.engine, thread_id)).status == "error"


async def test_sweeping_recovers_the_runs_of_a_dead_worker_only(store: Store) -> None:
    """A worker whose liveness key expired: its runs go back to pending before their
    leases run out, and its late writes are fenced out; a live worker's runs stay."""
    dead = await store.claim(await _pending(store.engine, await _thread(store.engine)), "d", LEASE)
    alive = await store.claim(await _pending(store.engine, await _thread(store.engine)), "a", LEASE)
    assert dead is not None and alive is not None
    fail = lambda r: _failure("WorkerLost")  # noqa: E731
    swept = await store.ledger.sweep(3, timedelta(seconds=60), fail, ["d"])
    assert swept is not None
    mine = {dead.run.run_id, alive.run.run_id}
    assert [r.run_id for r in swept.retry if r.run_id in mine] == [dead.run.run_id]
    assert await _count(store.engine, runs, run_id=alive.run.run_id, status="running") == 1
    assert not await store.finish_stateless(dead.run.run_id, dead.run.attempt, RunStatus.SUCCESS)
    again = await store.claim(dead.run.run_id, "a", LEASE)
    assert again is not None and again.run.attempt == dead.run.attempt + 1


async def test_pending_lists_every_pending_run_with_when_it_is_due(store: Store) -> None:
    thread_id = await _thread(store.engine)
    due = await _pending(store.engine, thread_id)
    later = await _pending(store.engine, thread_id, delay=60.0)
    await _running(store, await _thread(store.engine))
    listed = dict(await store.ledger.pending())
    assert due in listed and later in listed
    assert listed[due] < datetime.now(UTC) < listed[later]


async def test_an_enqueued_run_respects_the_auth_filter_and_tags_its_thread(store: Store) -> None:
    """The plain `enqueue` submit (one statement on Postgres) finds the thread only
    through the caller's filter, and leaves the run's tags on it."""
    thread_id = await _thread(store.engine)
    async with store.engine.begin() as conn:
        owned = threads.update().where(threads.c.thread_id == thread_id)
        await conn.execute(owned.values(metadata={"owner": "a"}, status="idle"))

    def submit(owner: str) -> Submit:
        auth = visibility.params({"owner": owner})
        values = _threaded_values(thread_id)
        return Submit(row=values, tags={"graph_id": "g"}, temporary=False, auth=auth)

    with pytest.raises(NotFound):
        await store.ledger.submit(submit("b"))
    assert await _count(store.engine, runs, thread_id=thread_id) == 0
    assert (await _thread_row(store.engine, thread_id)).status == "idle"
    run, cancelled = await store.ledger.submit(submit("a"))
    assert run.status.value == "pending" and cancelled.ended == []
    row = await _thread_row(store.engine, thread_id)
    assert (row.status, row.metadata) == ("busy", {"owner": "a", "graph_id": "g"})
