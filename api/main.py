"""`broker api`: one API process under uvicorn."""

from __future__ import annotations

from pathlib import Path

import uvicorn

from api.app import create_app
from broker.runtime import load_graphs
from broker.settings import Settings


def serve(config: Path, host: str, port: int) -> None:
    settings = Settings(BROKER_CONFIG=config)
    app = create_app(settings, load_graphs(settings))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
