"""The servers the end-to-end tests drive through the real SDK.

Every test that asks for `server` (or `client`) runs twice: against `broker api` +
`broker worker` on Postgres and Redis, and against `broker dev` on SQLite. Tests about
Redis, or about several API processes, ask for the production pair by name.
"""

from __future__ import annotations

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
from tests.processes import broker_processes, start_api, start_dev


@dataclass(frozen=True)
class Server:
    url: str
    backend: str  # "production" or "dev"
    data: Path | None = None  # the dev server's SQLite file


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
def dev_server(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    logs: Path = tmp_path_factory.mktemp("broker-dev")
    data = logs / "dev.sqlite3"
    process, url = start_dev(server_env, logs, data)
    yield Server(url, "dev", data)
    process.stop()


@pytest.fixture(scope="session", params=["production", "dev"])
def backend(request: pytest.FixtureRequest) -> Server:
    if request.param == "dev":
        dev: Server = request.getfixturevalue("dev_server")
        return dev
    return Server(request.getfixturevalue("production_server"), "production")


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
