"""`broker api`: one API process under uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path

from api import serving
from api.app import create_app
from api.listen import listen
from broker.graphs import load_graphs
from broker.runtime import read_project
from broker.settings import Settings


def serve(config: Path, host: str, port: int, access_log: bool = True) -> None:
    settings = Settings(BROKER_CONFIG=config)
    project = read_project(settings)
    graphs = load_graphs(project)
    sock = listen("api", host, port)
    app = create_app(settings, graphs, project=project)

    def ready(url: str) -> None:
        print(
            f"broker api: listening on {url} (graphs: {', '.join(graphs.ids)}; "
            f"access log {'on' if access_log else 'off'})",
            file=sys.stderr,
            flush=True,
        )

    def stopping() -> None:
        print("broker api: stopping; finishing open requests", file=sys.stderr, flush=True)

    serving.run(app, sock, name="broker api", access_log=access_log, ready=ready, stopping=stopping)
