"""`broker api`: one API process under uvicorn."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from api.app import create_app
from broker.graphs import load_graphs
from broker.runtime import read_project
from broker.settings import Settings


def serve(config: Path, host: str, port: int) -> None:
    settings = Settings(BROKER_CONFIG=config)
    project = read_project(settings)
    app = create_app(settings, load_graphs(project), project=project)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
