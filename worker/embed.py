"""A worker inside another process's event loop (`broker dev`): no SIGTERM of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from broker.runtime import Runtime
from worker.loop import Worker

log = logging.getLogger(__name__)


async def run_embedded(runtime: Runtime) -> None:
    """Recovers what a previous process left, then works until cancelled; then drains."""
    recovered = await runtime.lifecycle.recover_all()
    if recovered:
        log.info("worker: recovered %d runs left by the previous process", recovered)
    worker = Worker(runtime.settings, runtime.lifecycle, runtime.checkpointer, runtime.hurry)
    claiming = asyncio.create_task(worker.run(), name="embedded-worker")
    try:
        await asyncio.shield(claiming)
    except asyncio.CancelledError:
        worker.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await claiming
        raise
