"""Slow readers: what a stalled SSE client costs the API while a large run streams.

One run of the `emitter` graph emits `events` custom events of `pad` bytes. A normal
client streams it (POST .../runs/stream) and reads as fast as it can; a second client
joins the same run with a small receive buffer and reads nothing until the run is over.
The API's resident memory is sampled from /proc meanwhile. Afterwards the stalled
client reads what it was sent: an `error` event (a plain run), or every event (a
resumable run: it read on from the run's log).

    python -m bench.slow_reader [--source DIR] [--events N] [--pad BYTES]

starts `broker api` + `broker worker` from DIR (default: this checkout; another tree,
e.g. main's, gives the before figure) on a fresh database and prints both cases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from bench.servers import Server
from bench.workloads import QUICK, Sizes

_CUSTOM = re.compile(rb'event: custom\r\ndata: \{"index":(\d+),')
_EVENT = re.compile(rb"event: ([^\r\n]+)\r\ndata: ([^\r\n]*)\r\n")
_SAMPLE = 0.05  # seconds between RSS samples


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_stream(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    stalled: bool = False,
    **headers: str,
) -> socket.socket:
    """Sends an HTTP/1.0 request (the response then ends with the connection) and reads
    nothing yet; `stalled`: on a socket with a small receive buffer."""
    address = urlparse(url)
    sock = socket.socket()
    if stalled:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sticks
    sock.connect((address.hostname or "127.0.0.1", address.port or 80))
    data = json.dumps(body).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.0", f"Host: {address.netloc}", "Accept: text/event-stream"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + data)
    return sock


def read_head(sock: socket.socket) -> tuple[dict[str, str], bytes]:
    """The response's headers (lower-cased names) and the body bytes read with them."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed in the response head: {buffer[:200]!r}")
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    status, *fields = head.decode().split("\r\n")
    if " 200 " not in status + " ":
        raise RuntimeError(f"{status}: {rest[:300]!r}")
    headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    return headers, rest


def read_to_end(sock: socket.socket, start: bytes = b"") -> bytes:
    parts = [start]
    while chunk := sock.recv(1 << 20):
        parts.append(chunk)
    sock.close()
    return b"".join(parts)


def custom_indexes(body: bytes) -> list[int]:
    return [int(match) for match in _CUSTOM.findall(body)]


def last_event(body: bytes) -> tuple[str, bytes]:
    """The name and data of a stream's last event."""
    match = _EVENT.match(body, body.rfind(b"event: "))
    if match is None:
        return "", b""
    return match[1].decode(), match[2]


@dataclass
class Outcome:
    resumable: bool
    events: int
    normal: list[int]  # custom event indexes the normal reader got
    stalled: bytes  # all the stalled reader got
    rss_before: int
    rss_peak: int
    rss_after: int
    samples: list[tuple[float, int]]  # (seconds, API RSS) while the run streamed
    seconds: float

    def figures(self) -> dict[str, Any]:
        name, _ = last_event(self.stalled)
        mb = 1024 * 1024
        return {
            "resumable": self.resumable,
            "events": self.events,
            "normal_reader_events": len(self.normal),
            "stalled_reader_events": len(custom_indexes(self.stalled)),
            "stalled_reader_last_event": name,
            "normal_reader_in_order": self.normal == list(range(self.events)),
            "api_rss_before_mb": self.rss_before / mb,
            "api_rss_peak_mb": self.rss_peak / mb,
            "api_rss_growth_mb": (self.rss_peak - self.rss_before) / mb,
            "api_rss_after_mb": self.rss_after / mb,
            "seconds": self.seconds,
        }


async def stalled_reader_run(
    url: str, api_pid: int, events: int, pad: int, *, resumable: bool, thread: bool = False
) -> Outcome:
    """One run with a normal and a stalled reader (see the module's docstring);
    `thread`: the stalled reader follows the thread's stream instead of the run's."""
    async with httpx.AsyncClient(base_url=url) as client:
        thread_id = (await client.post("/threads", json={})).json()["thread_id"]
    before = rss_bytes(api_pid)
    started = time.monotonic()
    body = {
        "assistant_id": "emitter",
        "input": {"count": events, "pad": pad},
        "stream_mode": ["custom"],
        "stream_resumable": resumable,
    }
    stalled = None
    if thread:  # open before the run: it hears the run from its start
        stalled = open_stream(url, "GET", f"/threads/{thread_id}/stream", stalled=True)
        await asyncio.to_thread(read_head, stalled)
    normal = open_stream(url, "POST", f"/threads/{thread_id}/runs/stream", body)
    headers, rest = await asyncio.to_thread(read_head, normal)
    reading = asyncio.ensure_future(asyncio.to_thread(read_to_end, normal, rest))
    if stalled is None:
        path = f"{headers['content-location']}/stream"
        stalled = open_stream(url, "GET", path, stalled=True, Last_Event_ID="-1")
    samples = []
    while not reading.done():
        samples.append((time.monotonic() - started, rss_bytes(api_pid)))
        await asyncio.wait({reading}, timeout=_SAMPLE)
    normal_body = await reading
    seconds = time.monotonic() - started
    stalled.settimeout(60)  # a thread's stream that was not ended would never end
    stalled_body = await asyncio.to_thread(read_to_end, stalled)
    return Outcome(
        resumable,
        events,
        custom_indexes(normal_body),
        stalled_body,
        before,
        max(rss for _, rss in samples),
        rss_bytes(api_pid),
        samples,
        seconds,
    )


# -- in `make bench` ----------------------------------------------------------------------

FULL_RUN = (20_000, 5_000)  # events, pad: ~100 MB of events
QUICK_RUN = (2_000, 5_000)  # ~10 MB: still past the 4 MiB default buffer


async def workload(server: Server, sizes: Sizes) -> dict[str, Any]:
    """`bench.run`'s slow_reader: both cases on a server, figures as floats."""
    pid = server.pids.get("api") or server.pids["server"]  # ours, or the reference's one process
    events, pad = QUICK_RUN if sizes is QUICK else FULL_RUN
    figures: dict[str, Any] = {}
    for resumable in (False, True):
        outcome = await stalled_reader_run(server.url, pid, events, pad, resumable=resumable)
        prefix = "resumable_" if resumable else "plain_"
        for key, value in outcome.figures().items():
            if isinstance(value, int | float) and key != "resumable":
                figures[prefix + key] = float(value)
        figures[prefix + "stalled_reader_told"] = float(last_event(outcome.stalled)[0] == "error")
    figures["runs"] = 2.0
    return figures


# -- standalone ------------------------------------------------------------------------


@contextmanager
def broker_from(source: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`broker api` + one `broker worker` run from the checkout at `source`: (url, API pid)."""
    from tests.processes import free_port

    config = source / "tests" / "graphs" / "langgraph.json"
    port = free_port()
    env = {**env, "PYTHONPATH": str(source)}
    logs = Path(tempfile.mkdtemp(prefix="broker-slow-reader-"))
    command = [sys.executable, "-m", "broker"]
    api_args = ["api", "--config", str(config), "--port", str(port)]
    processes = [
        subprocess.Popen(
            [*command, *api_args],
            env=env,
            cwd=source,
            stdout=(logs / "api.log").open("wb"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [*command, "worker", "--config", str(config)],
            env=env,
            cwd=source,
            stdout=(logs / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        ),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise RuntimeError((logs / "api.log").read_text()[-2000:])
            time.sleep(0.2)
        yield url, processes[0].pid
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def main(argv: list[str] | None = None) -> None:
    from bench.harness import fresh_database
    from tests.services import ensure_services

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path(__file__).parents[1])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pad", type=int, default=5_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    services = ensure_services(allow_containers=False)
    results = {}
    with fresh_database(services.database_uri) as database_uri:
        env = {
            **os.environ,
            "DATABASE_URI": database_uri,
            "REDIS_URI": services.redis_uri,
            "BROKER_REDIS_PREFIX": f"broker-slow-{os.getpid()}",
        }
        with broker_from(args.source.resolve(), env) as (url, pid):
            for resumable in (False, True):
                outcome = asyncio.run(
                    stalled_reader_run(url, pid, args.events, args.pad, resumable=resumable)
                )
                figures = outcome.figures()
                figures["rss_mb_over_time"] = [
                    (round(t, 2), round(rss / 2**20, 1)) for t, rss in outcome.samples[::10]
                ]
                results["resumable" if resumable else "plain"] = figures
                shown = {k: v for k, v in figures.items() if k != "rss_mb_over_time"}
                print(json.dumps(shown), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
