"""Runs a uvicorn server on a bound socket and says what it does: a line when it
listens, a line when it is asked to stop and one when it has; a second Ctrl-C hurries
the shutdown (`on_force`)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("broker")

_POLL_SECONDS = 0.1


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn raises the signal again once it has stopped, which would end the
        # process before it says it stopped (SIGTERM) or with a traceback (Ctrl-C).
        self._captured_signals.clear()


def run(
    app: FastAPI,
    sock: socket.socket,
    *,
    name: str,
    access_log: bool,
    ready: Callable[[str], None],
    stopping: Callable[[], None] = lambda: None,
    on_force: Callable[[], None] = lambda: None,
) -> None:
    """Serves until SIGTERM/SIGINT; `ready(url)` once listening, `stopping()` on the signal."""
    # Our logging (broker.logs) prints uvicorn's records; its own start-up chatter is noise.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    config = uvicorn.Config(app, log_config=None, access_log=access_log)
    server = _Server(config)
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    # uvicorn's choice of loop (uvloop when installed), as `uvicorn.run` would make it.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_serve(server, sock, url, ready, stopping, on_force))
    print(f"{name}: stopped", file=sys.stderr, flush=True)


async def _serve(
    server: uvicorn.Server,
    sock: socket.socket,
    url: str,
    ready: Callable[[str], None],
    stopping: Callable[[], None],
    on_force: Callable[[], None],
) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    said = {"ready": False, "stopping": False, "force": False}
    while not serving.done():
        await asyncio.wait({serving}, timeout=_POLL_SECONDS)
        if server.started and not said["ready"]:
            said["ready"] = True
            ready(url)
        if server.should_exit and not said["stopping"]:
            said["stopping"] = True
            stopping()
        if server.force_exit and not said["force"]:
            said["force"] = True
            on_force()
    serving.result()
