"""A real `broker api` + `broker worker` pair, shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.processes import broker_processes, start_api


@pytest.fixture(scope="session")
def server_env(broker_env: dict[str, str]) -> dict[str, str]:
    # A short heartbeat lets a test see one without waiting the production 5 s.
    return {**broker_env, "BROKER_SSE_HEARTBEAT_SECONDS": "0.5", "N_JOBS_PER_WORKER": "4"}


@pytest.fixture(scope="session")
def server(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("broker-logs")
    with broker_processes(server_env, logs) as urls:
        yield urls[0]


@pytest.fixture
async def client(server: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server, api_key=None)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def second_server(
    server: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Another API process on the same Postgres and Redis (the worker is shared)."""
    process, url = start_api(server_env, tmp_path_factory.mktemp("broker-logs-2"))
    yield url
    process.stop()
