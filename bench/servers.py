"""The two servers a benchmark run compares, each as a context manager.

`our_server()`: `broker api` + 2 x `broker worker` (production layout) on a fresh
database and their own Redis prefix, through `tests/processes.py`; with `pooled=True`
their Postgres is behind PgBouncer in transaction mode (`tests/pooler.py`); with
`cluster=True` their Redis is a 3-master Redis Cluster of their own (`tests/cluster_redis.py`,
REDIS_URI=redis-cluster://…).

`reference_server()`: LangGraph's own `langgraph dev` (in-memory runtime) from the
virtualenv `bench/.ref-venv`, installed on first use; it raises `Unavailable` with the
reason when it cannot be installed or started, so the caller can say so and go on.

`langhost_server()`: the second reference, a durable one: `langhost serve` (LangGraph's
own API server on the MIT Postgres + Redis runtime `langgraph-runtime-pg`), pinned, from
`bench/.langhost-venv`, on a fresh empty database and a Redis database of its own; it
raises `Unavailable` the same way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import redis

from bench.ceilings import scratch_database
from bench.harness import fresh_database
from broker.redis_uri import CLUSTER_SCHEME, parse_cluster_uri
from tests.cluster_redis import RedisCluster
from tests.pooler import POOLED_ENV, pgbouncer
from tests.processes import Process, free_port, start_api, start_worker
from tests.services import ensure_services

BENCH = Path(__file__).resolve().parent
GRAPHS = BENCH / "graphs"
CONFIG = GRAPHS / "langgraph.json"
REF_VENV = BENCH / ".ref-venv"
REF_PACKAGES = ["langgraph-cli[inmem]", "langchain-core"]
INSTALL_TIMEOUT = 900.0
START_TIMEOUT = 90.0
# PgBouncer's server connections for the pooled variant: fewer than the 45 the direct
# one's processes hold (3 x BROKER_DB_POOL_SIZE), as a pooler is run, and so that both
# servers side by side stay within a default Postgres' max_connections (100).
POOLED_SERVER_CONNECTIONS = 20


class Unavailable(Exception):
    """The reference server cannot be had; the message says why."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


@dataclass
class Server:
    name: str
    url: str
    pids: dict[str, int]  # role ("api", "worker-0", ...) → process id
    database_uri: str | None = None  # ours, langhost: its fresh database
    redis_uri: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    logs: Path | None = None


@contextmanager
def our_server(
    workers: int = 2, config: Path = CONFIG, *, pooled: bool = False, cluster: bool = False
) -> Iterator[Server]:
    """1 API + `workers` workers, as production runs them, on a fresh database."""
    services = ensure_services(allow_containers=False)
    prefix = f"broker-bench-{uuid.uuid4().hex[:8]}"
    with (
        fresh_database(services.database_uri) as database_uri,
        tempfile.TemporaryDirectory(prefix="broker-bench-") as logs,
        ExitStack() as stack,
    ):
        redis_uri = stack.enter_context(redis_cluster()) if cluster else services.redis_uri
        env = {
            **os.environ,
            "DATABASE_URI": database_uri,
            "REDIS_URI": redis_uri,
            "BROKER_REDIS_PREFIX": prefix,
        }
        processes: dict[str, Process] = {}
        extra_pids: dict[str, int] = {}
        if pooled:
            bouncer = stack.enter_context(
                pgbouncer(database_uri, server_pool_size=POOLED_SERVER_CONNECTIONS)
            )
            env.update(POOLED_ENV, DATABASE_URI=bouncer.uri)
            extra_pids["pgbouncer"] = bouncer.pid  # its CPU counts as the server's
        api, url = start_api(env, Path(logs), config)
        stack.callback(api.stop)
        processes["api"] = api
        for index in range(workers):
            worker = start_worker(env, Path(logs), config)
            stack.callback(worker.stop)
            processes[f"worker-{index}"] = worker
        yield Server(
            name=_our_name(pooled=pooled, cluster=cluster),
            url=url,
            pids={**{role: p.popen.pid for role, p in processes.items()}, **extra_pids},
            database_uri=database_uri,
            redis_uri=redis_uri,
            logs=Path(logs),
        )


def _our_name(*, pooled: bool, cluster: bool) -> str:
    name = "ours behind pgbouncer" if pooled else "ours"
    return f"{name} on a Redis Cluster" if cluster else name


# -- ours on a Redis Cluster --------------------------------------------------------------


@contextmanager
def redis_cluster() -> Iterator[str]:
    """A 3-master Redis Cluster on loopback ports (tests/cluster_redis.py), as a REDIS_URI.

    Its nodes are `redis-server` processes, so bench/cpu.py counts their CPU as Redis'
    (every redis-server on the machine is), as it does the plain Redis'.
    """
    with (
        tempfile.TemporaryDirectory(prefix="broker-bench-cluster-") as directory,
        RedisCluster(Path(directory)) as cluster,
    ):
        yield cluster.uri


# -- the reference ------------------------------------------------------------------------


def _ref_bin(name: str) -> Path:
    return REF_VENV / "bin" / name


def _ref_versions() -> dict[str, str]:
    """Versions of the reference's packages, or {} if the venv is not usable."""
    script = (
        "import importlib.metadata as m\n"
        "for n in ('langgraph-cli','langgraph-api','langgraph-runtime-inmem','langgraph'):\n"
        "    print(n, m.version(n))\n"
        "import langgraph_runtime_inmem, langchain_core\n"
    )
    try:
        done = subprocess.run(
            [str(_ref_bin("python")), "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def ensure_reference_venv() -> dict[str, str]:
    """Reuses bench/.ref-venv if it works, else (re)creates it; returns package versions."""
    versions = _ref_versions()
    if versions and _ref_bin("langgraph").exists():
        listed = ", ".join(f"{k} {v}" for k, v in versions.items())
        say(f"reusing {REF_VENV.relative_to(BENCH.parent)} ({listed})")
        return versions
    _install_venv(REF_VENV, REF_PACKAGES, "langgraph-cli[inmem]")
    versions = _ref_versions()
    if not versions:
        raise Unavailable(f"{REF_VENV} was installed but its packages do not import")
    return versions


def _install_venv(venv: Path, packages: list[str], label: str) -> None:
    """(Re)creates `venv` with `packages`, saying so; `Unavailable` naming why if it fails."""
    shown = venv.relative_to(BENCH.parent)
    if venv.exists():
        say(f"{shown} is incomplete; recreating it")
        shutil.rmtree(venv)
    say(f"creating {shown} with {sys.version.split()[0]}")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        say(f"installing {label} into {shown}")
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stderr or exc.stdout or "").strip().splitlines()[-8:])
        raise Unavailable(f"installing {' '.join(packages)} failed: {tail}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"installing {' '.join(packages)} failed: {exc!r}") from exc


def reference_env() -> dict[str, str]:
    """Our environment without API keys or tracing: the dev server must not phone out."""
    env = {
        key: value
        for key, value in os.environ.items()
        if "API_KEY" not in key and not key.startswith(("LANGSMITH_", "LANGCHAIN_"))
    }
    env.update(
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
        # Our graphs log nothing; the dev server's info lines would only cost time.
        LOG_LEVEL="WARNING",
    )
    return env


@contextmanager
def reference_server(jobs: int = 20) -> Iterator[Server]:
    """`langgraph dev` on 127.0.0.1 serving bench/graphs, fresh in-memory state.

    It resolves graph paths and keeps its state (`.langgraph_api/`) in its working
    directory, so it runs in bench/graphs and that directory is cleared around it.
    """
    versions = ensure_reference_venv()
    state = GRAPHS / ".langgraph_api"
    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(_ref_bin("langgraph")),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n-jobs-per-worker",
        str(jobs),
        "--config",
        str(CONFIG),
    ]
    with tempfile.TemporaryDirectory(prefix="broker-bench-ref-") as logs:
        log = Path(logs) / "langgraph-dev.log"
        say(f"starting the reference: langgraph dev on {url} (n-jobs-per-worker {jobs})")
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                cwd=GRAPHS,
                env=reference_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_ok(process, url, log)
            yield Server(
                name="reference",
                url=url,
                pids={"server": process.pid},
                versions=versions,
                logs=Path(logs),
            )
        finally:
            _stop(process)
            shutil.rmtree(state, ignore_errors=True)


def _wait_ok(
    process: subprocess.Popen[bytes], url: str, log: Path, name: str = "langgraph dev"
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise Unavailable(f"{name} not ready after {START_TIMEOUT:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the dev server's process group (it may fork), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


# -- the second reference: langhost (LangGraph's API on the MIT Postgres runtime) ----------

LANGHOST_VENV = BENCH / ".langhost-venv"
# Pinned: the release issue 19's table measured. langhost 0.11.1 requires exactly
# langgraph-runtime-pg 0.11.1, which requires exactly langgraph-api 0.11.1 (and
# langgraph-checkpoint-postgres 3.1.0); langchain-core is what bench/graphs import.
LANGHOST_PACKAGES = [
    "langhost==0.11.1",
    "langgraph-runtime-pg==0.11.1",
    "langgraph-api==0.11.1",
    "langchain-core",
]
LANGHOST_VERSIONS = {"langhost": "0.11.1", "langgraph-runtime-pg": "0.11.1"}
# Its schema: the runtime's Alembic migrations, then the tables of the checkpointer and the
# store it opens. Every uvicorn process sets them up at start unless told not to, and two
# doing it at once on a fresh database collide (a CREATE TABLE races; the server exits),
# so the harness does it first, once, as a deployment's pre-start job would.
LANGHOST_SCHEMA = """
import asyncio
from langgraph_runtime_pg import checkpoint, migrate, store
migrate.upgrade_head()
async def main():
    await checkpoint.setup_checkpointer()
    await checkpoint.teardown_checkpointer()
    await store.setup_store()
    await store.teardown_store()
asyncio.run(main())
"""
# Its Redis keys (`lg:...`) take no prefix, so it gets a Redis database of its own,
# emptied of them before and after.
LANGHOST_REDIS_DB = 11


def _langhost_versions() -> dict[str, str]:
    """Versions of langhost's packages, or {} if the venv is not usable or not as pinned."""
    script = (
        "import importlib.metadata as m\n"
        "for n in ('langhost','langgraph-runtime-pg','langgraph-api','langgraph',"
        "'langgraph-checkpoint-postgres'):\n"
        "    print(n, m.version(n))\n"
        "import langhost.cli, langgraph_runtime_pg, langchain_core\n"
    )
    try:
        done = subprocess.run(
            [str(LANGHOST_VENV / "bin" / "python"), "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    versions = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    pinned = all(versions.get(name) == version for name, version in LANGHOST_VERSIONS.items())
    return versions if pinned else {}


def ensure_langhost_venv() -> dict[str, str]:
    """Reuses bench/.langhost-venv if it holds the pinned release, else (re)creates it."""
    versions = _langhost_versions()
    if versions and (LANGHOST_VENV / "bin" / "langhost").exists():
        listed = ", ".join(f"{k} {v}" for k, v in versions.items())
        say(f"reusing {LANGHOST_VENV.relative_to(BENCH.parent)} ({listed})")
        return versions
    _install_venv(LANGHOST_VENV, LANGHOST_PACKAGES, "langhost==0.11.1 + langgraph-runtime-pg")
    versions = _langhost_versions()
    if not versions:
        raise Unavailable(f"{LANGHOST_VENV} was installed but its packages do not import")
    return versions


def _langhost_schema(env: dict[str, str]) -> None:
    try:
        subprocess.run(
            [str(LANGHOST_VENV / "bin" / "python"), "-c", LANGHOST_SCHEMA],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=True,
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stderr or exc.stdout or "").strip().splitlines()[-8:])
        raise Unavailable(f"migrating langhost's database failed: {tail}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"migrating langhost's database failed: {exc!r}") from exc


def _redis_database(redis_uri: str, index: int) -> str:
    parts = urlsplit(redis_uri)
    return urlunsplit(parts._replace(path=f"/{index}"))


def _drop_langhost_keys(redis_uri: str) -> None:
    client = redis.Redis.from_url(redis_uri)
    try:
        keys = list(client.scan_iter(match="lg:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


@contextmanager
def langhost_server(workers: int = 1, jobs: int = 20) -> Iterator[Server]:
    """`langhost serve` on 127.0.0.1 serving bench/graphs: `workers` uvicorn processes,
    each serving HTTP and running `jobs` runs at once, on a fresh database (migrated here
    first) and its own Redis database.

    One process of 20, as `langgraph dev` runs: with `--workers 2`, 30 of 82 streamed
    stateless runs (50 clients) came back with no event at all, so its multi-process
    mode cannot be measured with these workloads (seen with 0.11.1 on this box)."""
    versions = ensure_langhost_venv()
    services = ensure_services(allow_containers=False)
    redis_uri = _redis_database(services.redis_uri, LANGHOST_REDIS_DB)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(LANGHOST_VENV / "bin" / "langhost"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(CONFIG),
        "--workers",
        str(workers),
        "--n-jobs-per-worker",
        str(jobs),
        "--no-browser",
        "--server-log-level",
        "WARNING",
    ]
    with (
        scratch_database(services.database_uri, "langhost") as database_uri,
        tempfile.TemporaryDirectory(prefix="broker-bench-langhost-") as logs,
    ):
        _drop_langhost_keys(redis_uri)
        log = Path(logs) / "langhost.log"
        say(f"starting langhost serve on {url} ({workers} workers x {jobs} jobs), fresh database")
        env = {**reference_env(), "DATABASE_URI": database_uri, "REDIS_URI": redis_uri}
        _langhost_schema(env)
        env["LG_RUNTIME_PG_AUTO_MIGRATE"] = "false"
        with log.open("wb") as out:
            # In bench/graphs, as langgraph dev: it puts its working directory on sys.path.
            process = subprocess.Popen(
                command,
                cwd=GRAPHS,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_ok(process, url, log, "langhost serve")
            yield Server(
                name="langhost",
                url=url,
                pids={"server": process.pid},
                database_uri=database_uri,
                redis_uri=redis_uri,
                versions=versions,
                logs=Path(logs),
            )
        finally:
            _stop(process)
            _drop_langhost_keys(redis_uri)


def stores_of(server: Server) -> tuple[list[str], list[int]]:
    """The server's Postgres databases and Redis ports, whose processes' CPU counts as its
    own (none for `langgraph dev`: other programs' on a shared box are nobody's)."""
    databases = [urlsplit(server.database_uri).path.lstrip("/")] if server.database_uri else []
    return databases, _redis_ports(server.redis_uri)


def _redis_ports(uri: str | None) -> list[int]:
    """Every node a cluster URI names (its seed nodes: the bench's cluster lists them all)."""
    if uri is None:
        return []
    if urlsplit(uri).scheme == CLUSTER_SCHEME:
        return [port for _, port in parse_cluster_uri(uri).nodes]
    return [urlsplit(uri).port or 6379]
