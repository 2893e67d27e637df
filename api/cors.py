"""http.cors: Starlette's CORSMiddleware with langgraph.json's rules.

Without a `cors` section the broker answers as LangGraph's servers do: any origin,
and the headers the SDK reads (Content-Location, X-Pagination-Total) are exposed.
Those two are exposed whatever is configured, or the SDK could not read them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from broker.config import CorsConfig

SDK_HEADERS = ("content-location", "x-pagination-total")


def options(cors: CorsConfig | None) -> dict[str, Any]:
    """CORSMiddleware's keyword arguments for the section (or its absence)."""
    if cors is None:
        return {
            "allow_origins": ["*"],
            "allow_methods": ["*"],
            "allow_headers": ["*"],
            "expose_headers": list(SDK_HEADERS),
        }
    exposed = list(cors.expose_headers or [])
    exposed += [h for h in SDK_HEADERS if h not in {e.lower() for e in exposed}]
    # Only a regex given: origins are what it matches, not every origin as well.
    origins = (
        cors.allow_origins if cors.allow_origins is not None or cors.allow_origin_regex else ["*"]
    )
    return {
        "allow_origins": origins or [],
        "allow_origin_regex": cors.allow_origin_regex,
        # Starlette would allow only GET: the API is POST and PATCH too.
        "allow_methods": cors.allow_methods if cors.allow_methods is not None else ["*"],
        "allow_headers": cors.allow_headers if cors.allow_headers is not None else ["*"],
        "allow_credentials": cors.allow_credentials,
        "expose_headers": exposed,
        "max_age": cors.max_age,
    }


def install(app: FastAPI, cors: CorsConfig | None) -> None:
    """Outermost of all middleware: a preflight is answered before auth or anything else."""
    app.add_middleware(CORSMiddleware, **options(cors))
