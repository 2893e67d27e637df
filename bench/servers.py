"""The two servers a benchmark run compares, each as a context manager.

`our_server()`: `broker api` + 2 x `broker worker` (production layout) on a fresh
database and their own Redis prefix, through `tests/processes.py`; with `pooled=True`
their Postgres is behind PgBouncer in transaction mode (`tests/pooler.py`); with
`cluster=True` their Redis is a 3-master Redis Cluster of their own (`tests/cluster_redis.py`,
REDIS_URI=redis-cluster://…).

`reference_server()`: LangGraph's own `langgraph dev` (in-memory runtime) from the
virtualenv `bench/.ref-venv`, installed on first use; it raises `Unavailable` with the
reason when it cannot be installed or started, so the caller can say so and go on.
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

import httpx

from bench.harness import fresh_database
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
    database_uri: str | None = None  # ours only: its fresh database
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
    if REF_VENV.exists():
        say(f"{REF_VENV.relative_to(BENCH.parent)} is incomplete; recreating it")
        shutil.rmtree(REF_VENV)
    say(f"creating {REF_VENV.relative_to(BENCH.parent)} with {sys.version.split()[0]}")
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(REF_VENV)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        say(f"installing langgraph-cli[inmem] into {REF_VENV.relative_to(BENCH.parent)}")
        subprocess.run(
            [str(_ref_bin("python")), "-m", "pip", "install", "--quiet", *REF_PACKAGES],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    except subprocess.CalledProcessError as exc:
        tail = "\n".join((exc.stderr or exc.stdout or "").strip().splitlines()[-8:])
        raise Unavailable(f"installing {' '.join(REF_PACKAGES)} failed: {tail}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"installing {' '.join(REF_PACKAGES)} failed: {exc!r}") from exc
    versions = _ref_versions()
    if not versions:
        raise Unavailable(f"{REF_VENV} was installed but its packages do not import")
    return versions


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


def _wait_ok(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"langgraph dev exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise Unavailable(f"langgraph dev not ready after {START_TIMEOUT:.0f}s:\n{_tail(log)}")


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
