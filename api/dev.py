"""`broker dev`: the API and an embedded worker in one process, on a SQLite file.

Like `langgraph dev` it listens on 2024; when that port is taken it says so and takes
the next free one (an explicit --port is never changed).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from functools import partial
from pathlib import Path

import uvicorn

from api.app import Companion, create_app
from broker.graphs import GraphRegistry, load_graphs
from broker.runtime import Runtime, open_dev_runtime, read_project
from broker.settings import Settings

DEFAULT_PORT = 2024
_TRIES = 50


def serve(config: Path, host: str, port: int | None, data: Path, embed: Companion) -> None:
    settings = Settings(BROKER_CONFIG=config)
    project = read_project(settings)
    graphs = load_graphs(project)
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    runtime = partial(_open, data=data)
    app = create_app(settings, graphs, project=project, runtime=runtime, companions=[embed])
    _banner(host, bound, config, data, graphs.ids)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    asyncio.run(server.serve(sockets=[sock]))


async def _open(settings: Settings, graphs: GraphRegistry, *, data: Path) -> Runtime:
    return await open_dev_runtime(settings, graphs, data)


def _listen(host: str, port: int | None, default: int = DEFAULT_PORT) -> socket.socket:
    """A bound socket: the requested port, or `default` and up when none was requested."""
    if port is not None:
        try:
            return _bind(host, port)
        except OSError as exc:
            sys.exit(
                f"broker dev: cannot listen on {host}:{port} ({exc.strerror}); pass another --port"
            )
    for candidate in range(default, default + _TRIES):
        try:
            sock = _bind(host, candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        if candidate != default:
            print(f"  Port {default} is in use; using {candidate} instead.", file=sys.stderr)
        return sock
    sys.exit(f"broker dev: ports {default}-{default + _TRIES - 1} are all taken; pass --port")


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _banner(host: str, port: int, config: Path, data: Path, graph_ids: list[str]) -> None:
    url = f"http://{host}:{port}"
    print(
        f"\n  broker dev is ready\n"
        f"  ➜  API:     {url}\n"
        f"  ➜  Graphs:  {', '.join(graph_ids)}  ({config})\n"
        f"  ➜  Data:    {data}  (SQLite; delete it to start afresh)\n"
        f"  Try it:     python examples/quickstart.py {url}\n",
        file=sys.stderr,
        flush=True,
    )
