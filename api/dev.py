"""`broker dev`: the API and an embedded worker in one process, on a SQLite file.

Like `langgraph dev` it listens on 2024; when that port is taken it says so and takes
the next free one (an explicit --port is never changed).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from api import dev_lock, serving
from api.app import Companion, create_app
from api.listen import listen
from broker.graphs import GraphRegistry, load_graphs
from broker.runtime import Runtime, open_dev_runtime, read_project
from broker.settings import Settings


def serve(config: Path, host: str, port: int | None, data: Path, embed: Companion) -> None:
    settings = Settings(BROKER_CONFIG=config)
    project = read_project(settings)
    graphs = load_graphs(project)
    sock = listen("dev", host, port)
    host, bound = sock.getsockname()[:2]
    lock = dev_lock.hold(data, f"http://{host}:{bound}")
    runtime = partial(_open, data=data)
    app = create_app(settings, graphs, project=project, runtime=runtime, companions=[embed])
    try:
        serving.run(
            app,
            sock,
            name="broker dev",
            access_log=False,
            ready=lambda url: _banner(url, config, data, graphs.ids),
            stopping=lambda: _stopping(settings.shutdown_grace_seconds),
            on_force=lambda: _hurry(app),
        )
    finally:
        lock.close()


def _stopping(grace: float) -> None:
    print(
        f"broker dev: stopping; running runs get up to {grace:.0f}s to finish "
        "(Ctrl-C again to hand them back and exit now)",
        file=sys.stderr,
        flush=True,
    )


def _hurry(app: FastAPI) -> None:
    print("broker dev: handing running runs back and exiting", file=sys.stderr, flush=True)
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is not None:
        runtime.hurry.set()


async def _open(settings: Settings, graphs: GraphRegistry, *, data: Path) -> Runtime:
    return await open_dev_runtime(settings, graphs, data)


def _banner(url: str, config: Path, data: Path, graph_ids: list[str]) -> None:
    print(
        f"\n  broker dev is ready\n"
        f"  ➜  API:     {url}\n"
        f"  ➜  Graphs:  {', '.join(graph_ids)}  ({config})\n"
        f"  ➜  Data:    {data}  (SQLite; delete it to start afresh)\n"
        f"  Try it:     {try_it(url)}\n",
        file=sys.stderr,
        flush=True,
    )


def try_it(url: str) -> str:
    """A command that works from here: the quickstart with this interpreter, if the
    examples are here (a checkout), else a plain request (an installed wheel)."""
    quickstart = Path("examples") / "quickstart.py"
    if not quickstart.is_file():
        return f"curl {url}/info"
    python = Path(sys.executable)
    if python.is_relative_to(Path.cwd()):
        python = python.relative_to(Path.cwd())
    return f"{python} {quickstart} {url}"
