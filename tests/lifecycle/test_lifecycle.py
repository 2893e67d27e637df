"""Runs from submit to their end, in-process on both backends: multitask strategies,
cancel, thread delete, sweep, hand-backs and recovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from broker.errors import NotFound, ThreadBusy
from broker.events import Subscription, parse_end
from broker.ids import uuid7
from broker.models import CancelAction, MultitaskStrategy, RunRequest, RunStatus, ThreadStatus
from broker.runtime import Runtime
from tests.lifecycle.conftest import drain

COUNTER: dict[str, Any] = {"count": 0, "log": []}
EXPIRED = timedelta(seconds=-1)


def _counter(**options: Any) -> RunRequest:
    return RunRequest(assistant_id="counter", input=COUNTER, **options)


async def _thread(runtime: Runtime) -> UUID:
    return (await runtime.service.create_thread(uuid7(), {})).thread_id


async def _submit(runtime: Runtime, thread_id: UUID | None, **options: Any) -> UUID:
    submission = await runtime.service.submit(thread_id, _counter(**options), subscribe=False)
    return submission.run.run_id


async def _status(runtime: Runtime, run_id: UUID) -> RunStatus:
    return (await runtime.service.runs.get(run_id)).status


async def _end(subscription: Subscription | None) -> dict[str, Any]:
    """The end marker of a run's stream (frames before it are skipped)."""
    assert subscription is not None
    while (message := await subscription.get(2.0)) is not None:
        if (end := parse_end(message)) is not None:
            await subscription.close()
            return end
    raise AssertionError("the run's stream never ended")


async def _abandon(runtime: Runtime, run_id: UUID) -> int:
    """A worker claims the run and dies at once: its lease has already run out."""
    claim = await runtime.lifecycle.claim(run_id, "dead-worker", EXPIRED)
    assert claim is not None
    return claim.attempt


async def test_enqueued_runs_take_turns(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    first = await _submit(runtime, thread_id)
    second = await _submit(runtime, thread_id)
    await drain(runtime)
    assert [await _status(runtime, r) for r in (first, second)] == [RunStatus.SUCCESS] * 2
    thread = await runtime.service.threads.get(thread_id)
    assert thread.status == ThreadStatus.IDLE and thread.values == {
        "count": 111,
        "log": ["one", "two", "three"] * 2,  # the second run went on from the first's state
    }


async def test_reject_refuses_while_a_run_is_pending(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    first = await _submit(runtime, thread_id)
    with pytest.raises(ThreadBusy):
        await _submit(runtime, thread_id, multitask_strategy=MultitaskStrategy.REJECT)
    await drain(runtime)
    assert await _status(runtime, first) == RunStatus.SUCCESS


@pytest.mark.parametrize("strategy", [MultitaskStrategy.INTERRUPT, MultitaskStrategy.ROLLBACK])
async def test_interrupt_and_rollback_end_the_run_before(
    runtime: Runtime, strategy: MultitaskStrategy
) -> None:
    thread_id = await _thread(runtime)
    first = await runtime.service.submit(thread_id, _counter(), subscribe=True)
    second = await _submit(runtime, thread_id, multitask_strategy=strategy)
    assert (await _end(first.subscription))["status"] == "interrupted"
    await drain(runtime)
    assert await _status(runtime, second) == RunStatus.SUCCESS
    if strategy == MultitaskStrategy.ROLLBACK:
        with pytest.raises(NotFound):
            await _status(runtime, first.run.run_id)
    else:
        assert await _status(runtime, first.run.run_id) == RunStatus.INTERRUPTED


async def test_cancelling_a_pending_run_ends_its_stream_and_frees_the_thread(
    runtime: Runtime,
) -> None:
    thread_id = await _thread(runtime)
    submitted = await runtime.service.submit(thread_id, _counter(), subscribe=True)
    await runtime.service.cancel([submitted.run.run_id], CancelAction.INTERRUPT)
    assert (await _end(submitted.subscription))["status"] == "interrupted"
    assert (await runtime.service.threads.get(thread_id)).status == ThreadStatus.IDLE


async def test_a_cancelled_stateless_run_takes_its_thread(runtime: Runtime) -> None:
    submitted = await runtime.service.submit(None, _counter(), subscribe=False)
    await runtime.service.cancel([submitted.run.run_id], CancelAction.INTERRUPT)
    with pytest.raises(NotFound):
        await runtime.service.threads.get(submitted.run.thread_id, include_temporary=True)


async def test_deleting_a_thread_ends_the_streams_of_its_runs(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    submitted = await runtime.service.submit(thread_id, _counter(), subscribe=True)
    await runtime.service.delete_thread(thread_id)
    assert (await _end(submitted.subscription))["status"] == "interrupted"
    with pytest.raises(NotFound):
        await _status(runtime, submitted.run.run_id)
    await drain(runtime)  # its wake-up finds nothing to run


async def test_an_abandoned_run_is_swept_and_resumed(runtime: Runtime) -> None:
    run_id = await _submit(runtime, await _thread(runtime))
    assert await _abandon(runtime, run_id) == 1
    assert (
        "1 runs of dead workers or with expired leases re-enqueued"
        in await runtime.lifecycle.sweep(60.0)
    )
    await drain(runtime)
    run = await runtime.service.runs.get(run_id)
    assert (run.status, run.attempt) == (RunStatus.SUCCESS, 2)


async def test_a_run_that_keeps_losing_its_worker_ends_in_error(runtime: Runtime) -> None:
    thread_id = await _thread(runtime)
    submitted = await runtime.service.submit(thread_id, _counter(), subscribe=True)
    run_id = submitted.run.run_id
    await _abandon(runtime, run_id)
    await runtime.lifecycle.sweep(60.0)
    assert await _abandon(runtime, run_id) == runtime.settings.max_attempts
    assert "1 runs failed after too many attempts" in await runtime.lifecycle.sweep(60.0)
    end = await _end(submitted.subscription)
    assert end["status"] == "error" and end["output"]["__error__"]["error"] == "WorkerLost"
    assert await _status(runtime, run_id) == RunStatus.ERROR
    assert (await runtime.service.threads.get(thread_id)).status == ThreadStatus.ERROR


async def test_a_hand_back_at_the_last_attempt_ends_in_error(runtime: Runtime) -> None:
    run_id = await _submit(runtime, await _thread(runtime))
    await _abandon(runtime, run_id)
    await runtime.lifecycle.sweep(60.0)
    claim = await runtime.lifecycle.claim(run_id, "w", timedelta(seconds=30))
    assert claim is not None and claim.attempt == runtime.settings.max_attempts
    await runtime.lifecycle.release(claim)
    assert await _status(runtime, run_id) == RunStatus.ERROR


async def test_recovery_wakes_each_run_once(runtime: Runtime) -> None:
    orphan = await _submit(runtime, await _thread(runtime))
    waiting = await _submit(runtime, await _thread(runtime))
    claim = await runtime.lifecycle.claim(orphan, "killed-process", timedelta(seconds=30))
    assert claim is not None
    await drain(runtime)  # the orphan's thread is held; the other run completes
    assert await _status(runtime, waiting) == RunStatus.SUCCESS
    again = await _submit(runtime, await _thread(runtime))
    assert await runtime.lifecycle.recover_all() >= 2  # the orphan and `again` (+ other tests')
    await drain(runtime)
    assert [await _status(runtime, r) for r in (orphan, again)] == [RunStatus.SUCCESS] * 2
