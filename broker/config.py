"""langgraph.json, read and judged key by key: it fails closed.

Every key LangGraph documents (langgraph-cli's config schema) is in `KEYS`: honoured,
refused at start with one line naming it and why, or accepted with an info line (the
build-time keys of `langgraph build`, which mean nothing to a running server). A key
nobody documents is a warning naming it. docs/production.md keeps the same table.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from broker.errors import ConfigError, GraphLoadError

log = logging.getLogger("broker.config")

Verdict = Literal["honoured", "accepted", "build", "refused"]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Key:
    verdict: Verdict
    why: str = ""
    keys: Mapping[str, Key] | None = None  # a section's own keys, judged in turn


HONOURED = Key("honoured")


def _section(**keys: Key) -> Key:
    return Key("honoured", keys=keys)


def _fields(model: type[BaseModel], **others: Key) -> Key:
    """A typed section: its model's fields are honoured, `others` judged as given."""
    return Key("honoured", keys={**dict.fromkeys(model.model_fields, HONOURED), **others})


def _build(what: str) -> Key:
    return Key("build", what)


def _refused(why: str) -> Key:
    return Key("refused", why)


# -- the http section, typed --------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CorsConfig(_Section):
    allow_origins: list[str] | None = None
    allow_methods: list[str] | None = None
    allow_headers: list[str] | None = None
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: list[str] | None = None
    max_age: int = 600

    @field_validator("allow_origin_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a regular expression: {exc}") from exc
        return value


class HeaderPatterns(_Section):
    """Header names, `*` matching any run of characters (no other pattern syntax)."""

    includes: list[str] | None = Field(None, validation_alias=AliasChoices("includes", "include"))
    excludes: list[str] | None = Field(None, validation_alias=AliasChoices("excludes", "exclude"))


class AuthSection(_Section):
    path: str  # "./auth.py:auth": the langgraph_sdk.Auth to use
    openapi: dict[str, Any] = Field(default_factory=dict)  # securitySchemes, security
    disable_studio_auth: bool = False  # nothing to disable: Studio's shortcut is not honoured


class HttpConfig(_Section):
    app: str | None = None
    cors: CorsConfig | None = None
    configurable_headers: HeaderPatterns | None = None
    logging_headers: HeaderPatterns | None = None
    disable_assistants: bool = False
    disable_threads: bool = False
    disable_runs: bool = False
    disable_store: bool = False
    disable_mcp: bool = False
    disable_a2a: bool = False
    disable_ui: bool = False
    disable_webhooks: bool = False
    disable_meta: bool = False
    middleware_order: Literal["middleware_first", "auth_first"] = "middleware_first"
    enable_custom_route_auth: bool = False

    @field_validator("app")
    @classmethod
    def _located(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError("must be of the form './file.py:attribute'")
        return value


class IndexSection(_Section):
    """store.index: semantic search (broker/memory.py embeds what is put and queried)."""

    embed: str  # "./file.py:attr" (a function or an Embeddings), or "provider:model"
    dims: int = Field(gt=0)
    fields: list[str] | None = None  # JSON paths to embed; default ["$"] (the whole value)


class TTLSection(_Section):
    """store.ttl: item expiry, in minutes (fractions allowed)."""

    default_ttl: float | None = Field(default=None, gt=0)
    refresh_on_read: bool = True
    sweep_interval_minutes: float | None = Field(default=None, gt=0)


class StoreSection(_Section):
    index: IndexSection | None = None
    ttl: TTLSection | None = None


class WebhookUrlPolicy(_Section):
    """Which webhook URLs a run (or cron) may name; checked at creation (422)."""

    require_https: bool = False
    allowed_domains: list[str] | None = None  # "hooks.example.com", "*.corp.com"
    allowed_ports: list[int] | None = None
    max_url_length: int = Field(default=4096, ge=1)
    # Relative URLs (LangGraph's loopback calls to its own routes) are always refused
    # here: a worker does not know the API's address. So disabling them holds.
    disable_loopback: bool = False


_TEMPLATE = re.compile(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class WebhooksConfig(_Section):
    env_prefix: str = "LG_WEBHOOK_"
    url: WebhookUrlPolicy = Field(default_factory=WebhookUrlPolicy)
    # Added to every delivery; values may hold `${{ env.VAR }}`, VAR starting with
    # env_prefix (a boundary: no other variable can leak), resolved at start.
    headers: dict[str, str] = Field(default_factory=dict)

    def resolved_headers(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """The headers with their templates filled from `env`; ConfigError if one names
        a variable outside env_prefix, or (given `env`) one that is not set there."""
        return {name: self._resolve(name, value, env) for name, value in self.headers.items()}

    def _resolve(self, name: str, value: str, env: Mapping[str, str] | None) -> str:
        def variable(match: re.Match[str]) -> str:
            var = match.group(1)
            if not var.startswith(self.env_prefix):
                raise ConfigError(
                    f"`webhooks.headers.{name}`: ${{{{ env.{var} }}}} does not start with "
                    f"webhooks.env_prefix ({self.env_prefix!r})"
                )
            if env is None:
                return match.group(0)
            if var not in env:
                raise ConfigError(
                    f"`webhooks.headers.{name}`: environment variable {var} is not set"
                )
            return env[var]

        return _TEMPLATE.sub(variable, value)


class ThreadTTLConfig(_Section):
    """checkpointer.ttl: the time-to-live of threads created without one, and the sweep."""

    strategy: Literal["delete", "keep_latest"] = "delete"
    default_ttl: float | None = Field(default=None, gt=0)  # minutes
    sweep_interval_minutes: float | None = Field(default=None, gt=0)
    sweep_limit: int | None = Field(default=None, ge=1)  # threads per sweep


_PATTERNS = _fields(HeaderPatterns, include=HONOURED, exclude=HONOURED)

KEYS: Mapping[str, Key] = {
    "$schema": HONOURED,  # the editor's schema hint
    "graphs": HONOURED,
    "env": HONOURED,
    "dependencies": HONOURED,  # local paths go on sys.path; packages must be installed
    "python_version": _build("the image's Python version"),
    "node_version": _build("the image's Node.js version"),
    "api_version": _build("the langgraph-api version of the image"),
    "_INTERNAL_docker_tag": _build("an internal image tag"),
    "base_image": _build("the image to build from"),
    "image_distro": _build("the image's Linux distribution"),
    "pip_config_file": _build("pip's configuration while building"),
    "pip_installer": _build("the installer used while building"),
    "keep_pkg_tools": _build("packaging tools kept in the image"),
    "dockerfile_lines": _build("lines added to the generated Dockerfile"),
    "source": _build("where the build finds the uv project"),
    "auth": Key("accepted", "loaded by the API's custom auth (api/auth/loader.py)"),
    # Each typed field of the section is honoured (api/http_section.py applies them);
    # disable_ui holds trivially (not served yet), logging_headers too (the broker
    # logs no request headers); disable_webhooks stops deliveries (no outbox row is
    # written).
    "http": _fields(
        HttpConfig,
        cors=_fields(CorsConfig),
        configurable_headers=_PATTERNS,
        logging_headers=_PATTERNS,
        mount_prefix=_refused(
            "not supported yet: routes are served at the root; put a proxy in front to add a prefix"
        ),
    ),
    "store": _fields(StoreSection, index=_fields(IndexSection), ttl=_fields(TTLSection)),
    "checkpointer": _section(
        path=_refused(
            "not supported: the broker's own checkpointer fences every write by the run's "
            "lease, which a custom checkpointer cannot; remove checkpointer.path"
        ),
        ttl=_fields(ThreadTTLConfig),
        serde=_refused("not supported yet: checkpoints use LangGraph's default serializer"),
    ),
    "webhooks": _fields(WebhooksConfig, url=_fields(WebhookUrlPolicy)),
    "encryption": _refused("not supported yet: no at-rest encryption hooks"),
    "priority": _refused("not supported yet: runs have no priority"),
    "ui": _refused("not supported yet: generative UI components are not served"),
    "ui_config": _refused("not supported yet: generative UI components are not served"),
}


@dataclass(frozen=True)
class Finding:
    level: Literal["refused", "info", "warning"]
    key: str  # dotted, as in langgraph.json: "store.index"
    message: str


def judge(
    config: Mapping[str, Any], keys: Mapping[str, Key] = KEYS, prefix: str = ""
) -> list[Finding]:
    """What each key of `config` gets: refused, an info line, a warning, or nothing."""
    findings: list[Finding] = []
    for name, value in config.items():
        path = f"{prefix}{name}"
        key = keys.get(name)
        if key is None:
            findings.append(
                Finding(
                    "warning",
                    path,
                    f"`{path}` is not a langgraph.json key "
                    "LangGraph documents; it is ignored (a typo?)",
                )
            )
        elif _empty(value):
            continue  # nothing asked for: a refused key set to null or {} holds
        elif key.verdict == "refused":
            findings.append(Finding("refused", path, f"`{path}` is {key.why}"))
        elif key.verdict == "build":
            findings.append(
                Finding(
                    "info",
                    path,
                    f"`{path}` ({key.why}) is a build-time key "
                    "of `langgraph build`: ignored at run time by design",
                )
            )
        elif key.keys is not None and not isinstance(value, Mapping):
            findings.append(Finding("refused", path, f"`{path}` must be an object"))
        elif key.keys is not None:
            findings.extend(judge(value, key.keys, f"{path}."))
    return findings


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping | list) and not value)


# -- the whole file -------------------------------------------------------------------


@dataclass(frozen=True)
class GraphSource:
    location: str  # "./file.py:attribute", as written
    description: str | None = None


@dataclass(frozen=True)
class ProjectConfig:
    """A langgraph.json that passed: what the processes act on."""

    path: Path
    graphs: dict[str, GraphSource]
    env: dict[str, Any] | str | None = None
    dependencies: list[str] = field(default_factory=list)
    http: HttpConfig = field(default_factory=HttpConfig)
    auth: AuthSection | None = None
    store: StoreSection = field(default_factory=StoreSection)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    thread_ttl: ThreadTTLConfig | None = None  # checkpointer.ttl

    @property
    def base(self) -> Path:
        """Paths in langgraph.json are relative to its folder."""
        return self.path.resolve().parent


def read_config(path: Path, *, quiet: bool = False) -> ProjectConfig:
    """Reads and judges langgraph.json: logs info lines and warnings (unless `quiet`: read
    again by a process that judged it at start), raises ConfigError (one line naming each
    refused key) if anything is refused."""
    raw = _read_json(path)
    findings = judge(raw)
    refused = [f.message for f in findings if f.level == "refused"]
    if refused:
        raise ConfigError(f"{path}: " + "; ".join(refused))
    for finding in [] if quiet else findings:
        log.log(logging.INFO if finding.level == "info" else logging.WARNING, "%s", finding.message)
    ttl = (raw.get("checkpointer") or {}).get("ttl")
    webhooks = _typed(WebhooksConfig, "webhooks", raw.get("webhooks"), path)
    try:  # a template outside env_prefix stops us now; one not set, once `env` is applied
        webhooks.resolved_headers(None)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.detail}") from None
    return ProjectConfig(
        path=path,
        graphs=_graphs(raw.get("graphs"), path),
        env=raw.get("env"),
        dependencies=list(raw.get("dependencies") or []),
        http=_typed(HttpConfig, "http", raw.get("http"), path),
        auth=_typed(AuthSection, "auth", raw["auth"], path) if raw.get("auth") else None,
        store=_typed(StoreSection, "store", raw.get("store"), path),
        webhooks=webhooks,
        thread_ttl=_typed(ThreadTTLConfig, "checkpointer.ttl", ttl, path) if ttl else None,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def _graphs(graphs: Any, path: Path) -> dict[str, GraphSource]:
    if not isinstance(graphs, dict) or not graphs:
        raise GraphLoadError(f"{path}: 'graphs' must map graph ids to './file.py:attribute'")
    sources = {}
    for graph_id, source in graphs.items():
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            sources[graph_id] = GraphSource(source["path"], source.get("description"))
        elif isinstance(source, str):
            sources[graph_id] = GraphSource(source)
        else:
            raise GraphLoadError(
                f"{path}: graph '{graph_id}' must be './file.py:attribute' or "
                '{"path": "./file.py:attribute", "description": "…"}'
            )
    return sources


def _typed(model: type[M], name: str, value: Any, path: Path) -> M:
    try:
        return model.model_validate(_without_nulls(value or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"`{'.'.join([name, *map(str, e['loc'])])}` {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def _without_nulls(value: Any) -> Any:
    """A key set to null means its default, as LangGraph reads it."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value
