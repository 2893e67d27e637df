"""docker-compose.yml, Dockerfile, .dockerignore and deploy/nginx.conf, checked statically.

Nothing is built or started: the compose file is validated against the compose-spec
JSON schema that check-jsonschema vendors, and the topology that makes `--scale api=N
--scale worker=M` work is asserted service by service. `${VAR:-default}` is read as
its default, as `docker compose` does with no environment and no `.env`.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from broker import migrate as broker_migrate
from broker.settings import Settings

# PyYAML (a dependency of langchain-core) ships no type hints; this file is its one user.
_yaml: Any = importlib.import_module("yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PRODUCTION_DOC = ROOT / "docs" / "production.md"

REQUIRED_SERVICES = {"postgres", "redis", "migrate", "api", "worker", "lb"}
BROKER_SERVICES = ("api", "worker")  # the ones that scale
BACKING_SERVICES = ("postgres", "redis")

# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`; `$$` is a literal `$`.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# -- reading the files --------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data = _yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load_compose()["services"]
    return found


def interpolate(value: str) -> str:
    """`value` as compose renders it with no variables set (defaults only)."""

    def default(match: re.Match[str]) -> str:
        name, operator, fallback = match.groups()
        assert operator in ("-", ":-"), f"${{{name}}} in docker-compose.yml has no default"
        return str(fallback)

    return _VARIABLE.sub(default, value).replace("$$", "$")


def strings(node: Any) -> list[str]:
    """Every string in a loaded YAML document, keys included."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def variables() -> set[str]:
    """The names docker-compose.yml interpolates."""
    return {m.group(1) for value in strings(load_compose()) for m in _VARIABLE.finditer(value)}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "write `environment:` as a mapping"
    return {name: interpolate(str(value)) for name, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency → condition (the short list form means `service_started`)."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = interpolate(volume).split(":")
            found.append(Mount(source, target, "ro" in "".join(mode).split(",")))
        else:
            source = interpolate(str(volume.get("source", "")))
            found.append(Mount(source, volume["target"], bool(volume.get("read_only"))))
    return found


def bind_mounts(service: dict[str, Any]) -> list[Mount]:
    return [m for m in mounts(service) if m.source.startswith((".", "/"))]


def seconds(duration: str) -> float:
    """A compose duration (`45s`, `1m30s`, `1h`) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def settings_aliases() -> set[str]:
    return {f.alias for f in Settings.model_fields.values() if f.alias is not None}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages() -> list[Stage]:
    """The Dockerfile's build stages, each with its (INSTRUCTION, arguments) in order."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue  # comments may sit inside a continued instruction
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, f"cannot read FROM {args}"
            base, name = match.groups()
            stages.append(Stage(name or str(len(stages)), base))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def stage_named(name: str) -> Stage:
    by_name = {stage.name: stage for stage in dockerfile_stages()}
    assert name in by_name, f"the Dockerfile has no stage {name!r}"
    return by_name[name]


def effective(stage: Stage, keyword: str) -> str | None:
    """The last `keyword` instruction in `stage` or in the stages it is built FROM."""
    for instruction, args in reversed(stage.instructions):
        if instruction == keyword:
            return args
    names = {s.name for s in dockerfile_stages()}
    return effective(stage_named(stage.base), keyword) if stage.base in names else None


def dockerfile_arg_default(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"ARG {name} has no default"
    return match.group(1)


def copy_sources() -> list[str]:
    """Sources of every COPY/ADD from the build context (not `--from=` another stage)."""
    sources = []
    for stage in dockerfile_stages():
        for keyword, args in stage.instructions:
            if keyword not in ("COPY", "ADD") or "--from=" in args:
                continue
            words = [w for w in args.split() if not w.startswith("--")]
            if args.lstrip().startswith("["):
                words = json.loads(args)
            sources.extend(words[:-1])
    return sources


def nginx_directives() -> list[list[str]]:
    """Every `name arg…;` in deploy/nginx.conf, as word lists (blocks flattened)."""
    text = re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())
    statements = re.split(r"[;{}]", text)
    return [words for s in statements if (words := re.findall(r'"[^"]*"|\S+', s))]


def broker_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert isinstance(command, list), "use the exec (list) form for broker commands"
    return [str(word) for word in command]


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


# -- (a) the schema -----------------------------------------------------------------------


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_validates_against_the_compose_spec() -> None:
    result = check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_an_invalid_compose_file(tmp_path: Path) -> None:
    broken = load_compose()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    path = tmp_path / "docker-compose.yml"
    path.write_text(json.dumps(broken))
    result = check_compose_schema(path)
    assert result.returncode != 0, "the vendored compose-spec schema accepted a bad condition"


# -- (b) the topology ---------------------------------------------------------------------


def test_required_services_exist() -> None:
    assert set(services()) >= REQUIRED_SERVICES


def test_every_variable_has_a_default() -> None:
    """`docker compose up` works with no `.env` at all."""
    for value in strings(load_compose()):
        assert "${" not in interpolate(value), value


@pytest.mark.parametrize("name", BROKER_SERVICES)
def test_api_and_worker_can_scale(name: str) -> None:
    service = services()[name]
    assert "container_name" not in service, f"{name}: a fixed container_name prevents --scale"
    assert "ports" not in service, f"{name}: a host port prevents --scale; go through lb"
    assert "build" in service or "image" in service


def test_only_lb_publishes_a_port() -> None:
    publishing = {name for name, service in services().items() if service.get("ports")}
    assert publishing == {"lb"}
    (port,) = services()["lb"]["ports"]
    *host, container = interpolate(str(port)).split(":")
    assert host == ["8123"], "the default host port is 8123 (${BROKER_PORT:-8123})"
    assert container == "8123"
    assert "BROKER_PORT" in str(port)


def test_migrate_is_one_shot_and_gates_api_and_worker() -> None:
    migrate = services()["migrate"]
    assert broker_command(migrate) == ["migrate"]
    assert migrate.get("restart") == "no"
    assert depends_on(migrate).get("postgres") == "service_healthy"
    for name in BROKER_SERVICES:
        assert depends_on(services()[name]).get("migrate") == "service_completed_successfully"


def test_backing_services_have_healthchecks_and_dependents_wait_for_them() -> None:
    checks = {name: services()[name].get("healthcheck", {}) for name in BACKING_SERVICES}
    assert "pg_isready" in " ".join(checks["postgres"].get("test", []))
    assert "redis-cli" in checks["redis"].get("test", [])
    assert "ping" in checks["redis"].get("test", [])
    for name, service in services().items():
        for dependency, condition in depends_on(service).items():
            if dependency in BACKING_SERVICES:
                assert condition == "service_healthy", f"{name} → {dependency}: {condition}"
    for name in BROKER_SERVICES:
        assert depends_on(services()[name]).get("redis") == "service_healthy"


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    (data,) = mounts(services()["postgres"])
    assert data.target == "/var/lib/postgresql/data"
    assert data.source in (load_compose().get("volumes") or {})
    assert services()["postgres"]["image"].startswith("postgres:16")
    assert services()["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("name", ["migrate", *BROKER_SERVICES])
def test_broker_environment_uses_only_names_settings_reads(name: str) -> None:
    env = environment(services()[name])
    unknown = set(env) - settings_aliases()
    assert not unknown, f"{name}: broker.settings.Settings reads no {sorted(unknown)}"
    settings = Settings.model_validate(env)  # the values parse, too ("30s" would not)
    assert urlparse(settings.database_uri).hostname == "postgres"
    assert urlparse(settings.redis_uri).hostname == "redis"


def test_api_and_worker_share_database_redis_and_prefix() -> None:
    shared = ("DATABASE_URI", "REDIS_URI", "BROKER_REDIS_PREFIX", "BROKER_CONFIG")
    api, worker, migrate = (environment(services()[n]) for n in ("api", "worker", "migrate"))
    assert {k: api.get(k) for k in shared} == {k: worker.get(k) for k in shared}
    assert api["DATABASE_URI"] == migrate["DATABASE_URI"]
    assert "POSTGRES_PASSWORD" in variables()


def test_worker_outlives_its_shutdown_grace() -> None:
    worker = services()["worker"]
    grace = Settings.model_validate(environment(worker)).shutdown_grace_seconds
    assert worker.get("stop_signal") == "SIGTERM"
    assert seconds(str(worker["stop_grace_period"])) > grace


@pytest.mark.parametrize("name", BROKER_SERVICES)
def test_graphs_are_mounted_where_broker_config_points(name: str) -> None:
    service = services()[name]
    config = Path(environment(service)["BROKER_CONFIG"])
    (graphs,) = [m for m in bind_mounts(service) if config.is_relative_to(m.target)]
    assert graphs.read_only
    local = ROOT / graphs.source / config.relative_to(graphs.target)
    assert local.is_file(), f"{name}: {local} does not exist"
    for source in json.loads(local.read_text())["graphs"].values():
        assert (local.parent / str(source).partition(":")[0]).is_file(), source


def test_api_serves_where_lb_and_healthcheck_look() -> None:
    api = services()["api"]
    command = broker_command(api)
    assert command[0] == "api"
    assert option(command, "--host") == "0.0.0.0"
    port = option(command, "--port")
    assert f"127.0.0.1:{port}/ok" in " ".join(api["healthcheck"]["test"])
    assert ["set", "$upstream", f"http://api:{port}"] in nginx_directives()


def test_workers_and_migrate_have_no_http_healthcheck() -> None:
    for name in ("worker", "migrate"):
        service = services()[name]
        assert "healthcheck" not in service or service["healthcheck"].get("disable") is True
        target = service["build"]["target"]
        assert effective(stage_named(target), "HEALTHCHECK") is None, f"{name} ({target})"


def test_lb_mounts_the_nginx_config_read_only() -> None:
    lb = services()["lb"]
    assert lb["image"] == "nginx:alpine"
    assert Mount("./deploy/nginx.conf", "/etc/nginx/nginx.conf", True) in mounts(lb)
    assert depends_on(lb).get("api") in ("service_healthy", "service_started")


def test_nginx_re_resolves_api_and_streams_unbuffered() -> None:
    directives = nginx_directives()
    resolvers = [d for d in directives if d[0] == "resolver"]
    assert resolvers and resolvers[0][1] == "127.0.0.11"
    assert "valid=5s" in resolvers[0]
    # A variable in proxy_pass is what makes nginx resolve `api` again at request time.
    assert ["proxy_pass", "$upstream"] in directives
    for expected in (
        ["proxy_buffering", "off"],
        ["proxy_cache", "off"],
        ["proxy_http_version", "1.1"],
        ["proxy_set_header", "Connection", '""'],
        ["chunked_transfer_encoding", "on"],
        ["proxy_set_header", "Last-Event-ID", "$http_last_event_id"],
        # the thread stream's WebSocket
        ["proxy_set_header", "Upgrade", "$http_upgrade"],
        ["proxy_set_header", "Connection", "$connection_upgrade"],
    ):
        assert expected in directives, f"nginx.conf lacks `{' '.join(expected)};`"
    timeouts = [d[1] for d in directives if d[0] == "proxy_read_timeout"]
    assert timeouts and all(seconds(t) >= 3600 for t in timeouts)


# -- the Dockerfile -----------------------------------------------------------------------


def built_stages() -> list[Stage]:
    """The stages compose builds, and the default target (the last stage)."""
    targets = {s["build"]["target"] for s in services().values() if "build" in s}
    return [stage_named(t) for t in sorted(targets)] + [dockerfile_stages()[-1]]


def test_dockerfile_starts_from_python_311_slim() -> None:
    bases = {stage.base for stage in dockerfile_stages()}
    assert "${PYTHON_IMAGE}" in bases
    assert dockerfile_arg_default("PYTHON_IMAGE") == "python:3.11-slim"


def test_every_built_stage_runs_broker_as_non_root() -> None:
    for stage in built_stages():
        assert json.loads(effective(stage, "ENTRYPOINT") or "null") == ["broker"], stage.name
        user = (effective(stage, "USER") or "root").split(":")[0]
        assert user not in ("root", "0"), f"stage {stage.name} runs as root"


def test_only_the_api_has_a_healthcheck_and_it_is_the_default_target() -> None:
    api = stage_named("api")
    assert dockerfile_stages()[-1].name == "api"
    healthcheck = effective(api, "HEALTHCHECK") or ""
    cmd = json.loads(effective(api, "CMD") or "[]")
    assert f"127.0.0.1:{option(cmd, '--port')}/ok" in healthcheck
    assert cmd == broker_command(services()["api"])
    assert effective(stage_named("worker"), "HEALTHCHECK") is None
    assert json.loads(effective(stage_named("worker"), "CMD") or "[]") == ["worker"]


def test_image_config_default_matches_the_baked_in_graphs() -> None:
    base = stage_named("base").instructions
    env = " ".join(args for keyword, args in base if keyword == "ENV")
    assert "BROKER_CONFIG=/graphs/langgraph.json" in env
    assert "examples/" in copy_sources()


# -- (d) every path the files name exists -------------------------------------------------


def test_compose_paths_exist() -> None:
    for name, service in services().items():
        for mount in bind_mounts(service):
            assert (ROOT / mount.source).exists(), f"{name} mounts missing {mount.source}"
        if "build" in service:
            context = ROOT / service["build"].get("context", ".")
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file()


def dockerignored(path: Path) -> str | None:
    """The .dockerignore pattern that keeps `path` (relative) out of the build context.

    fnmatch's `*` also matches `/`, so this errs towards finding an exclusion.
    """
    patterns = [
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    prefixes = [Path(*path.parts[: i + 1]).as_posix() for i in range(len(path.parts))]
    hits = [pat for pat in patterns for pre in prefixes if fnmatch.fnmatch(pre, pat)]
    return hits[0] if hits else None


def test_dockerfile_copy_sources_exist_and_reach_the_build_context() -> None:
    for source in copy_sources():
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such path"
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        for file in files:
            relative = file.relative_to(ROOT)
            if {"__pycache__", "node_modules", "dist"} & set(relative.parts):
                continue  # made locally (bytecode, examples/chat's npm install and build): meant to stay out
            pattern = dockerignored(relative)
            assert pattern is None, f"COPY {source}: .dockerignore {pattern!r} drops {relative}"


def test_editable_install_keeps_migrations_where_broker_migrate_looks() -> None:
    """broker/migrate.py finds the migrations through broker/migrations (a link to alembic/)."""
    assert broker_migrate.MIGRATIONS.resolve() == ROOT / "alembic"
    sources = copy_sources()
    for needed in ("pyproject.toml", "alembic.ini", "alembic/", "broker/", "api/", "worker/"):
        assert needed in sources, f"the Dockerfile does not COPY {needed}"
    assert "pip install --no-deps -e ." in DOCKERFILE.read_text()


# -- docs/production.md speaks of real settings -------------------------------------------


def test_production_doc_names_only_real_settings() -> None:
    # A `${{ env.NAME }}` template names the user's own variable (webhook headers), not ours.
    text = re.sub(r"\$\{\{ env\.[A-Z0-9_]+ \}\}", "", PRODUCTION_DOC.read_text())
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", text))
    known = settings_aliases() | variables()
    assert not named - known, f"docs/production.md names unknown settings {named - known}"
    assert "docker compose up -d --scale api=3 --scale worker=4" in PRODUCTION_DOC.read_text()
