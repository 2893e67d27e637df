"""Find Postgres and Redis for the tests: env, then local services, then testcontainers.

Never skips. For each service, in order:

1. `DATABASE_URI` / `REDIS_URI` if set (and it must answer: no silent fallback);
2. the local service at 127.0.0.1 (5432 / 6379), started first if installed but down;
3. a testcontainers container, if a Docker engine answers (stopped at exit);

and otherwise stops the run with what is missing and how to fix it.
`python -m tests.services` does steps 1-2 only (what `make run` needs).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker import reach

LOCAL_DATABASE_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URI = "redis://127.0.0.1:6379/0"
START_TIMEOUT_SECONDS = 20.0
POSTGRES_IMAGE = "postgres:16-alpine"
REDIS_IMAGE = "redis:7-alpine"


@dataclass(frozen=True)
class Services:
    database_uri: str  # an admin URI; tests create their own databases through it
    redis_uri: str


class Unavailable(Exception):
    """One source cannot provide a service; the message says why."""


@dataclass(frozen=True)
class _Service:
    """What differs between Postgres and Redis while looking for them."""

    reach: reach.Service  # its name, its variable and its probe
    local_uri: str
    start_local: Callable[[], None]  # raises Unavailable
    start_container: Callable[[], str]  # raises Unavailable
    fix: str


# -- probing (broker.reach: the same probe and message as every `broker` command) ----


def _probe_error(service: _Service, uri: str) -> str | None:
    return reach.problem(service.reach, uri)


def _wait_until_ready(service: _Service, uri: str) -> str | None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while (error := _probe_error(service, uri)) is not None and time.monotonic() < deadline:
        time.sleep(0.25)
    return error


# -- starting local services -----------------------------------------------------------


def _run(argv: list[str]) -> None:
    """Run a start command; output goes to a file, so daemons cannot hold a pipe open."""
    with tempfile.TemporaryFile(mode="w+") as output:
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise Unavailable(f"`{shlex.join(argv)}` failed: {error}") from error
        output.seek(0)
        if result.returncode != 0:
            detail = output.read().strip()
            raise Unavailable(f"`{shlex.join(argv)}` exited {result.returncode}: {detail}")


def _installed(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise Unavailable(f"`{program}` is not installed")
    return path


def _postgres_version(root: Path = Path("/etc/postgresql")) -> str:
    clusters = root.glob("*/main") if root.is_dir() else iter(())
    versions = sorted((p.parent.name for p in clusters if p.parent.name.isdigit()), key=int)
    if not versions:
        raise Unavailable(f"no PostgreSQL cluster under {root}")
    return versions[-1]


def _start_local_postgres() -> None:
    program = _installed("pg_ctlcluster")
    _run([program, "--skip-systemctl-redirect", _postgres_version(), "main", "start"])


def _start_local_redis() -> None:
    program = _installed("redis-server")
    flags = ["--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379"]
    _run([program, *flags, "--save", "", "--appendonly", "no"])


def _start_locally(service: _Service) -> str:
    service.start_local()
    error = _wait_until_ready(service, service.local_uri)
    if error is not None:
        raise Unavailable(f"started, but not ready after {START_TIMEOUT_SECONDS:.0f} s: {error}")
    return service.local_uri


# -- containers ------------------------------------------------------------------------


def docker_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextmanager
def _third_party_deprecations_ignored() -> Iterator[None]:
    """pytest turns warnings into errors; testcontainers' own deprecations are not ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _container_class(module: str, name: str) -> Any:
    """Newer testcontainers moved modules to `community` and deprecated the old paths."""
    for path in (f"testcontainers.community.{module}", f"testcontainers.{module}"):
        try:
            with _third_party_deprecations_ignored():
                return getattr(importlib.import_module(path), name)
        except ModuleNotFoundError:
            continue
    raise Unavailable(f"testcontainers has no {name}: pip install 'testcontainers[{module}]'")


def _start_container(module: str, name: str, *args: object, **kwargs: object) -> Any:
    """Start a testcontainers container, stopped when this process exits."""
    container_class = _container_class(module, name)
    try:
        with _third_party_deprecations_ignored():
            container = container_class(*args, **kwargs)
            container.start()
    except Exception as error:
        raise Unavailable(f"could not start {name}: {error}") from error
    atexit.register(container.stop)
    return container


def _postgres_container() -> str:
    container = _start_container("postgres", "PostgresContainer", POSTGRES_IMAGE, driver=None)
    return str(container.get_connection_url())


def _redis_container() -> str:
    container = _start_container("redis", "RedisContainer", REDIS_IMAGE)
    return f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"


# -- choosing a source -----------------------------------------------------------------


POSTGRES = _Service(
    reach=reach.POSTGRES,
    local_uri=LOCAL_DATABASE_URI,
    start_local=_start_local_postgres,
    start_container=_postgres_container,
    fix="set DATABASE_URI=postgresql://user@host:port/db, "
    "or install PostgreSQL (apt-get install postgresql), or start Docker",
)

REDIS = _Service(
    reach=reach.REDIS,
    local_uri=LOCAL_REDIS_URI,
    start_local=_start_local_redis,
    start_container=_redis_container,
    fix="set REDIS_URI=redis://host:port/0, "
    "or install Redis (apt-get install redis-server), or start Docker",
)


def _announce(service: _Service, uri: str, source: str) -> str:
    print(
        f"tests: {service.reach.name} {source}: {reach.redacted(uri)}", file=sys.stderr, flush=True
    )
    return uri


def _configured(service: _Service, uri: str) -> str:
    error = _probe_error(service, uri)
    if error is not None:
        raise Unavailable(
            f"{reach.unusable(service.reach, uri, error)} or unset {service.reach.env} "
            "to use local services or Docker"
        )
    return _announce(service, uri, f"from {service.reach.env}")


def _local_or_container(service: _Service, allow_containers: bool) -> str:
    if _probe_error(service, service.local_uri) is None:
        return _announce(service, service.local_uri, "already running locally")
    try:
        return _announce(service, _start_locally(service), "started locally")
    except Unavailable as error:
        where = (
            f"{service.reach.name} not reachable at {reach.address(service.local_uri)} ({error})"
        )
    if not allow_containers:
        raise Unavailable(f"{where}: {service.fix.removesuffix(', or start Docker')}")
    if not docker_available():
        raise Unavailable(f"{where} and no Docker engine: {service.fix}")
    try:
        return _announce(service, service.start_container(), "in a testcontainers container")
    except Unavailable as error:
        raise Unavailable(f"{where}, and Docker failed too ({error}): {service.fix}") from error


def _resolve(service: _Service, allow_containers: bool) -> str:
    configured = os.environ.get(service.reach.env)
    if configured:
        return _configured(service, configured)
    return _local_or_container(service, allow_containers)


@functools.cache
def ensure_services(allow_containers: bool = True) -> Services:
    """Postgres and Redis for this process, or a RuntimeError naming what is missing."""
    uris: dict[str, str] = {}
    problems: list[str] = []
    for service in (POSTGRES, REDIS):
        try:
            uris[service.reach.name] = _resolve(service, allow_containers)
        except Unavailable as error:
            problems.append(str(error))
    if problems:
        raise RuntimeError("\n".join(["Test services are missing:", *problems]))
    return Services(database_uri=uris[POSTGRES.reach.name], redis_uri=uris[REDIS.reach.name])


def main() -> int:
    """Make sure local (or configured) Postgres and Redis answer; used by `make run`."""
    try:
        ensure_services(allow_containers=False)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
