"""A webhook receiver on loopback: a Starlette app under uvicorn in a thread of its own,
recording every POST. `POST /{key}` answers the statuses scripted for `key`, in turn
(then 200), so a test can make a receiver fail twice and then accept."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.processes import free_port


@dataclass(frozen=True)
class Received:
    key: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    port: int
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.port}/{key}"

    def answer(self, key: str, *statuses: int) -> None:
        with self._lock:
            self.script[key] = list(statuses)

    def posts(self, key: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.key == key]

    async def wait(self, key: str, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(posts := self.posts(key)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{key}: {len(posts)} posts, expected {count}")
            await asyncio.sleep(0.05)
        return posts

    async def _hook(self, request: Request) -> Response:
        key = request.path_params["key"]
        body = orjson.loads(await request.body())
        with self._lock:
            self.received.append(Received(key, dict(request.headers), body))
            statuses = self.script.get(key) or []
            status = statuses.pop(0) if statuses else 200
        return Response(status_code=status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{key}", self._hook, methods=["POST"])])


@contextmanager
def receiving(port: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver(port or free_port())
    config = uvicorn.Config(
        receiver.app(), host="127.0.0.1", port=receiver.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="webhook-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the webhook receiver did not start")
        time.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(10)
