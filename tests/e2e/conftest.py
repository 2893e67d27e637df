"""The servers the end-to-end tests drive through the real SDK.

Every test that asks for `server` (or `client`) runs twice: against `broker api` +
`broker worker` on Postgres and Redis, and against `broker dev` on SQLite. Modules marked
`pooled` (the core: runs, background, cancel, HITL, thread state) run a third time
against `broker api` + `broker worker` whose Postgres is behind PgBouncer in transaction
mode. Tests about Redis, or about several API processes, ask for the production pair by
name.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.settings import Settings
from broker.storage.engine import create_engine
from broker.storage.sqlite import create_sqlite_engine
from tests.pooler import POOLED_ENV
from tests.processes import broker_processes, start_api, start_dev


@dataclass(frozen=True)
class Server:
    url: str
    backend: str  # "production", "pooled" or "dev"
    data: Path | None = None  # the dev server's SQLite file


BACKENDS = ["production", "dev"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on a `backend` runs on each; a `pooled` one behind PgBouncer too, a
    `cluster` one on a Redis Cluster too."""
    if "backend" in metafunc.fixturenames:
        extra = [m for m in ("pooled", "cluster") if metafunc.definition.get_closest_marker(m)]
        metafunc.parametrize("backend", [*BACKENDS, *extra], indirect=True, scope="session")


@pytest.fixture(scope="session")
def server_env(broker_env: dict[str, str]) -> dict[str, str]:
    # A short heartbeat lets a test see one without waiting the production 5 s.
    return {
        **broker_env,
        "BROKER_SSE_HEARTBEAT_SECONDS": "0.5",
        "N_JOBS_PER_WORKER": "4",
        "BROKER_SHUTDOWN_GRACE": "2",
        "BROKER_MAX_ATTEMPTS": "3",  # a run wrongly handed back would show attempt 2 or 3
    }


@pytest.fixture(scope="session")
def production_server(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("broker-logs")
    with broker_processes(server_env, logs) as urls:
        yield urls[0]


@pytest.fixture(scope="session")
def pooled_server(
    server_env: dict[str, str],
    pooled_database_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The production pair with Postgres behind PgBouncer (transaction mode).

    Same database as `production_server` (SQL checks see its rows), its own Redis prefix
    so that only these processes claim the runs its API accepts.
    """
    env = {
        **server_env,
        **POOLED_ENV,
        "DATABASE_URI": pooled_database_uri,
        "BROKER_REDIS_PREFIX": f"{server_env['BROKER_REDIS_PREFIX']}-pooled-{uuid.uuid4().hex[:6]}",
    }
    logs: Path = tmp_path_factory.mktemp("broker-pooled-logs")
    with broker_processes(env, logs) as urls:
        yield urls[0]


@pytest.fixture(scope="session")
def cluster_server(
    server_env: dict[str, str],
    redis_cluster_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The production pair on a 3-master Redis Cluster (tests/cluster_redis.py).

    Same database as `production_server` (SQL checks see its rows); the Redis is its own.
    """
    env = {**server_env, "REDIS_URI": redis_cluster_uri}
    logs: Path = tmp_path_factory.mktemp("broker-cluster-logs")
    with broker_processes(env, logs) as urls:
        yield urls[0]


@pytest.fixture(scope="session")
def dev_server(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    logs: Path = tmp_path_factory.mktemp("broker-dev")
    data = logs / "dev.sqlite3"
    process, url = start_dev(server_env, logs, data)
    yield Server(url, "dev", data)
    process.stop()


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> Server:
    if request.param == "dev":
        dev: Server = request.getfixturevalue("dev_server")
        return dev
    return Server(request.getfixturevalue(f"{request.param}_server"), request.param)


@pytest.fixture(scope="session")
def server(backend: Server) -> str:
    return backend.url


@pytest.fixture
async def engine(backend: Server, settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The store behind the server under test, for checks in SQL."""
    store = create_sqlite_engine(backend.data) if backend.data else create_engine(settings)
    yield store
    await store.dispose()


@pytest.fixture
async def client(server: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server, api_key=None)
    yield client
    await client.aclose()


@pytest.fixture
async def production_client(production_server: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=production_server, api_key=None)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def second_server(
    production_server: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Another API process on the same Postgres and Redis (the worker is shared)."""
    process, url = start_api(server_env, tmp_path_factory.mktemp("broker-logs-2"))
    yield url
    process.stop()
