"""Imports the `langgraph_sdk.Auth` that langgraph.json's `auth.path` names.

`{"auth": {"path": "./auth.py:auth", "openapi": {...}}}` (read and checked with the rest
of langgraph.json by `broker.config`); the path is relative to langgraph.json, as for
graphs. A path that does not import, or names something other than an `Auth`, stops the
process: a deployment configured to be protected must never start open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langgraph_sdk import Auth

from broker.config import ProjectConfig
from broker.errors import GraphLoadError
from broker.graphs import load_object


@dataclass(frozen=True)
class AuthConfig:
    auth: Auth
    path: str  # as written in langgraph.json, for messages
    openapi: dict[str, Any] = field(default_factory=dict)  # securitySchemes, security


def load(project: ProjectConfig | None) -> AuthConfig | None:
    """The configured auth, or None when langgraph.json configures none."""
    if project is None or project.auth is None:
        return None
    path = project.auth.path
    try:
        target = load_object(path, project.base)
    except Exception as exc:
        raise GraphLoadError(
            f"Failed to load auth from '{path}': {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(target, Auth):
        raise GraphLoadError(
            f"Failed to load auth from '{path}': expected a langgraph_sdk.Auth instance, "
            f"got {type(target).__name__}"
        )
    return AuthConfig(target, path, project.auth.openapi)
