"""`broker worker`: one worker process; SIGTERM stops claiming and lets runs finish."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from broker import eventloop
from broker.graphs import GraphRegistry
from broker.runtime import load_graphs, open_runtime
from broker.settings import Settings
from worker.loop import Worker


def serve(config: Path) -> None:
    settings = Settings(BROKER_CONFIG=config)
    graphs = load_graphs(settings)
    eventloop.run(_run(settings, graphs))


async def _run(settings: Settings, graphs: GraphRegistry) -> None:
    runtime = await open_runtime(settings, graphs)
    worker = Worker(settings, runtime.lifecycle, runtime.checkpointer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await runtime.close()
