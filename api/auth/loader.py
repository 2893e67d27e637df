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
from broker.graphs import load_typed


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
    target = load_typed(path, project.base, Auth, "auth", "a langgraph_sdk.Auth instance")
    return AuthConfig(target, path, project.auth.openapi)
