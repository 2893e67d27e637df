"""Webhooks and thread expiry through the real SDK, on both topologies (`broker api` +
`broker worker` on Postgres and Redis, and `broker dev`), with langgraph.json's
`webhooks` section (allowed domains, a header from the environment) and
`checkpointer.ttl` (tests/graphs/retention.json), each server on a database of its own:
any worker on a database sends its outbox, and these must carry this config's header."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.conftest import fresh_database
from tests.processes import GRAPHS, broker_processes, start_api, start_dev, start_worker
from tests.receiver import Receiver, receiving
from tests.services import Services

CONFIG = GRAPHS.parent / "retention.json"
COUNTER: dict[str, Any] = {"count": 0, "log": []}
FAST = {
    "LG_WEBHOOK_TOKEN": "s3cret",  # the config's header: "Bearer ${{ env.LG_WEBHOOK_TOKEN }}"
    "BROKER_WEBHOOK_POLL_SECONDS": "0.1",
    "BROKER_WEBHOOK_BACKOFF_SECONDS": "0.05",
    "BROKER_RETENTION_SWEEP_SECONDS": "0.3",
}


def _own(broker_env: dict[str, str], services: Services) -> Iterator[dict[str, str]]:
    """The session's environment on a database and Redis prefix of its own."""
    for uri in fresh_database(services):
        prefix = f"hooks-{uuid.uuid4().hex[:8]}"
        yield {**broker_env, **FAST, "DATABASE_URI": uri, "BROKER_REDIS_PREFIX": prefix}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture(scope="module", params=["production", "dev"])
def hooks_server(
    request: pytest.FixtureRequest,
    broker_env: dict[str, str],
    services: Services,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("hooks")
    for env in _own(broker_env, services):
        if request.param == "dev":
            process, url = start_dev(env, logs, logs / "dev.sqlite3", config=CONFIG)
            yield url
            process.stop()
        else:
            with broker_processes(env, logs, config=CONFIG) as urls:
                yield urls[0]


@pytest.fixture
async def hooks(hooks_server: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=hooks_server, api_key=None)
    yield client
    await client.aclose()


def _key() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


async def test_each_finished_run_posts_once(hooks: LangGraphClient, receiver: Receiver) -> None:
    threaded, stateless = _key(), _key()
    thread = await hooks.threads.create()
    await hooks.runs.wait(
        thread["thread_id"], "counter", input=COUNTER, webhook=receiver.url(threaded)
    )
    await hooks.runs.wait(None, "counter", input=COUNTER, webhook=receiver.url(stateless))
    (post,) = await receiver.wait(threaded, 1)
    (other,) = await receiver.wait(stateless, 1)
    run: dict[str, Any] = dict(await hooks.runs.get(thread["thread_id"], post.body["run_id"]))
    assert post.body["status"] == run["status"] == "success"
    assert {k: post.body[k] for k in ("thread_id", "assistant_id", "kwargs", "metadata")} == {
        k: run[k] for k in ("thread_id", "assistant_id", "kwargs", "metadata")
    }
    assert post.body["values"] == {"count": 111, "log": ["one", "two", "three"]}
    assert post.headers["x-hook-token"] == "Bearer s3cret"
    assert other.body["status"] == "success" and other.body["kwargs"]["temporary"] is True
    await asyncio.sleep(0.5)  # a few more sender rounds: nothing is sent twice
    assert len(receiver.posts(threaded)) == len(receiver.posts(stateless)) == 1


async def test_a_failed_run_and_a_flaky_receiver(
    hooks: LangGraphClient, receiver: Receiver
) -> None:
    failed, flaky = _key(), _key()
    receiver.answer(flaky, 500, 502)
    thread = await hooks.threads.create()
    await hooks.runs.wait(
        thread["thread_id"],
        "failing",
        input={"value": "x"},
        webhook=receiver.url(failed),
        raise_error=False,
    )
    await hooks.runs.wait(None, "counter", input=COUNTER, webhook=receiver.url(flaky))
    (post,) = await receiver.wait(failed, 1)
    assert post.body["status"] == "error" and "cannot handle" in post.body["error"]
    posts = await receiver.wait(flaky, 3)
    assert [p.body["run_id"] for p in posts] == [posts[0].body["run_id"]] * 3


@pytest.mark.parametrize(
    ("webhook", "why"),
    [
        ("file:///etc/passwd", "absolute http:// or https://"),
        ("https://evil.test/hook", "allowed_domains"),
        ("/relative/hook", "relative"),
    ],
)
async def test_a_webhook_we_would_not_call_is_422(
    hooks_server: str, webhook: str, why: str
) -> None:
    async with httpx.AsyncClient(base_url=hooks_server) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "counter", "input": COUNTER, "webhook": webhook}
        for path in (f"/threads/{tid}/runs", f"/threads/{tid}/runs/wait", "/runs/stream"):
            response = await http.post(path, json=body)
            assert response.status_code == 422, (path, response.text)
            detail = response.json()["detail"]
            assert detail.startswith("webhook: ") and why in detail
        runs = await http.get(f"/threads/{tid}/runs")
        assert runs.json() == []  # refused before anything was written


async def test_an_expired_thread_is_gone(hooks: LangGraphClient) -> None:
    thread = await hooks.threads.create(ttl={"ttl": 0.005, "strategy": "delete"})  # 0.3 s
    tid = thread["thread_id"]
    run = await hooks.runs.create(tid, "counter", input=COUNTER)
    await hooks.runs.join(tid, run["run_id"])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            await hooks.threads.get(tid)
        except NotFoundError:
            break
        await asyncio.sleep(0.1)
    with pytest.raises(NotFoundError):
        await hooks.threads.get(tid)
    with pytest.raises(NotFoundError):
        await hooks.runs.get(tid, run["run_id"])
    with pytest.raises(NotFoundError):
        await hooks.threads.get_state(tid)


@pytest.fixture
def own_env(broker_env: dict[str, str], services: Services) -> Iterator[dict[str, str]]:
    yield from _own(broker_env, services)


async def test_a_delivery_outlives_a_worker_killed_before_sending_it(
    own_env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    """The run ends on a worker whose sender never comes round (its poll is an hour); the
    worker is killed (-9) with the delivery in the outbox; another worker sends it."""
    key, env = _key(), own_env
    api, url = start_api(env, tmp_path, CONFIG)
    holding = start_worker({**env, "BROKER_WEBHOOK_POLL_SECONDS": "3600"}, tmp_path, CONFIG)
    try:
        async with get_client(url=url, api_key=None) as client:
            await client.runs.wait(None, "counter", input=COUNTER, webhook=receiver.url(key))
        await asyncio.sleep(0.5)
        assert receiver.posts(key) == []  # held in the outbox
        holding.stop(signal.SIGKILL)
        other = start_worker(env, tmp_path, CONFIG)
        try:
            (post,) = await receiver.wait(key, 1, timeout=30)
        finally:
            other.stop()
        assert post.body["status"] == "success"
    finally:
        holding.stop()
        api.stop()
