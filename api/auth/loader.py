"""Reads `auth` from langgraph.json and imports the `langgraph_sdk.Auth` it names.

`{"auth": {"path": "./auth.py:auth", "openapi": {...}, "disable_studio_auth": bool}}`;
the path is relative to langgraph.json, as for graphs. A path that does not import, or
names something other than an `Auth`, stops the process: a deployment configured to be
protected must never start open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth

from broker.errors import GraphLoadError
from broker.graphs import load_object


@dataclass(frozen=True)
class AuthConfig:
    auth: Auth
    path: str  # as written in langgraph.json, for messages
    openapi: dict[str, Any] = field(default_factory=dict)  # securitySchemes, security


def load(config: Path | None) -> AuthConfig | None:
    """The configured auth, or None when langgraph.json configures none."""
    section = _section(config)
    if section is None:
        return None
    assert config is not None
    path = section.get("path")
    if not isinstance(path, str) or ":" not in path:
        raise GraphLoadError(f"{config}: auth.path must be './file.py:attribute', got {path!r}")
    try:
        target = load_object(path, config.resolve().parent)
    except Exception as exc:
        raise GraphLoadError(
            f"Failed to load auth from '{path}': {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(target, Auth):
        raise GraphLoadError(
            f"Failed to load auth from '{path}': expected a langgraph_sdk.Auth instance, "
            f"got {type(target).__name__}"
        )
    openapi = section.get("openapi") or {}
    if not isinstance(openapi, dict):
        raise GraphLoadError(f"{config}: auth.openapi must be an object")
    return AuthConfig(target, path, openapi)


def _section(config: Path | None) -> dict[str, Any] | None:
    if config is None:
        return None
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise GraphLoadError(f"Cannot read config {config}: {exc}") from exc
    section = data.get("auth") if isinstance(data, dict) else None
    if section is None:
        return None
    if not isinstance(section, dict):
        raise GraphLoadError(f"{config}: 'auth' must be an object with a 'path'")
    if "path" not in section:
        # Only openapi/disable_studio_auth: no handler, so nothing is protected; say so.
        raise GraphLoadError(f"{config}: auth has no 'path': name the Auth object to use")
    return section
