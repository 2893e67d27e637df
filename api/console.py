"""/console: the ops console, static files shipped in this package (api/static/console).

Plain HTML, CSS and JavaScript modules, nothing built and nothing fetched from elsewhere
at run time. The files are code only, so they are served to anyone, like /docs; every
figure the console shows comes from the API itself (/metrics, /threads, runs and their
streams) with the headers the user types into it, under the same custom auth as any client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

PREFIX = "/console"
FILES = Path(__file__).parent / "static" / "console"


def is_console(path: str) -> bool:
    """The console's own files (open to all: they hold no data)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def mount(app: FastAPI) -> None:
    app.add_api_route(PREFIX, _to_folder, include_in_schema=False)
    app.mount(PREFIX, StaticFiles(directory=FILES, html=True), name="console")


async def _to_folder() -> RedirectResponse:
    # Relative module paths (main.js, api.js) resolve against /console/, not /; a relative
    # Location keeps a path prefix a proxy put in front of the broker.
    return RedirectResponse("console/")
