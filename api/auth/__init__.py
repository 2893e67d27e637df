"""LangGraph's custom auth (`auth` in langgraph.json, a `langgraph_sdk.Auth`): loading
(`loader`), authentication of every request (`authenticate`), authorization of each
action (`authorize`), and what the API's description says of it (`openapi`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from api.auth.authenticate import AuthenticateMiddleware
from api.auth.loader import load
from broker.config import ProjectConfig

log = logging.getLogger("api.auth")


def install(app: FastAPI, project: ProjectConfig | None) -> None:
    """Loads the configured auth (stopping the process if it cannot) and protects `app`."""
    config = load(project)
    app.state.auth = None if config is None else config.auth
    if config is None:
        log.info("no auth configured: every request is served")
        return
    app.add_middleware(AuthenticateMiddleware, auth=config.auth)
    _describe(app, config.openapi)
    log.info("custom auth from %s: every request but /ok and /info is authenticated", config.path)


def _describe(app: FastAPI, openapi: dict[str, Any]) -> None:
    """The security scheme langgraph.json gives (`auth.openapi`: `securitySchemes`,
    `security`) in the API's OpenAPI document."""
    build = app.openapi

    def described() -> dict[str, Any]:
        document = build()
        if "securitySchemes" in openapi:
            components = document.setdefault("components", {})
            components["securitySchemes"] = openapi["securitySchemes"]
        if "security" in openapi:
            document["security"] = openapi["security"]
        return document

    app.openapi = described  # type: ignore[method-assign]
