"""Servers configured with custom auth (tests/graphs/auth.json), both topologies, and
one SDK client per user. Users are fresh per session (the Postgres store is shared)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.conftest import fresh_database
from tests.processes import broker_processes, start_dev
from tests.services import Services

AUTH_CONFIG = Path(__file__).parent.parent / "graphs" / "auth.json"


@pytest.fixture(scope="session")
def auth_database(services: Services) -> Iterator[str]:
    yield from fresh_database(services)


@pytest.fixture(scope="session")
def auth_env(broker_env: dict[str, str], auth_database: str) -> dict[str, str]:
    # A database and a Redis prefix of their own: these workers know only auth.json's
    # graphs, and must never take (and fail) the runs of the other servers of the session.
    return {
        **broker_env,
        "DATABASE_URI": auth_database,
        "BROKER_REDIS_PREFIX": f"broker-auth-{uuid4().hex[:8]}",
        "BROKER_SSE_HEARTBEAT_SECONDS": "0.5",
        "N_JOBS_PER_WORKER": "2",
    }


@pytest.fixture(scope="session")
def auth_production(
    auth_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("auth-logs")
    with broker_processes(auth_env, logs, config=AUTH_CONFIG) as urls:
        yield urls[0]


@pytest.fixture(scope="session")
def auth_dev(auth_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("auth-dev")
    process, url = start_dev(auth_env, logs, logs / "dev.sqlite3", config=AUTH_CONFIG)
    yield url
    process.stop()


@pytest.fixture(scope="session", params=["production", "dev"])
def auth_server(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"auth_{request.param}")
    return url


@dataclass(frozen=True)
class Users:
    a: LangGraphClient
    b: LangGraphClient
    reader: LangGraphClient  # may not delete threads
    anonymous: LangGraphClient  # no token
    a_id: str


@pytest.fixture
async def users(auth_server: str) -> AsyncIterator[Users]:
    run = uuid4().hex[:8]

    def client(name: str | None) -> LangGraphClient:
        headers = {"Authorization": f"Bearer user-{name}-{run}"} if name else {}
        return get_client(url=auth_server, api_key=None, headers=headers)

    made = Users(client("alice"), client("bob"), client("reader"), client(None), f"alice-{run}")
    yield made
    for c in (made.a, made.b, made.reader, made.anonymous):
        await c.aclose()
