"""`http.disable_webhooks`: runs with a webhook still run; nothing is written or sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from broker.ids import uuid7
from broker.models import RunRequest, RunStatus
from broker.runtime import Runtime
from broker.settings import Settings
from broker.storage.tables import webhook_outbox
from tests.lifecycle.conftest import drain


@pytest.fixture
def fast_settings(fast_settings: Settings, tmp_path: Path) -> Settings:
    config = tmp_path / "langgraph.json"
    graphs = {"counter": "./counter.py:graph"}
    config.write_text(json.dumps({"graphs": graphs, "http": {"disable_webhooks": True}}))
    return fast_settings.model_copy(update={"config": config})


async def test_a_run_with_a_webhook_runs_and_sends_nothing(runtime: Runtime) -> None:
    thread = await runtime.service.create_thread(uuid7(), {})
    request = RunRequest(
        assistant_id="counter", input={"count": 0, "log": []}, webhook="http://127.0.0.1:9/x"
    )
    run = (await runtime.service.submit(thread.thread_id, request, subscribe=False)).run
    await drain(runtime)
    assert (await runtime.service.runs.get(run.run_id)).status == RunStatus.SUCCESS
    assert await runtime.lifecycle.deliver_webhooks() == 0
    query = select(func.count()).select_from(webhook_outbox)
    query = query.where(webhook_outbox.c.run_id == run.run_id)
    async with runtime.engine.connect() as conn:
        assert (await conn.execute(query)).scalar_one() == 0
