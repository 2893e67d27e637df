"""Redis restarted (losing everything) and Postgres connections cut: no accepted run is lost."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.checks import assert_history_is_clean, checkpoint_rows
from tests.chaos.cluster import Cluster
from tests.chaos.test_crashes import _create_runs, _until_done
from tests.processes import free_port


class PrivateRedis:
    """A redis-server of this test's own, so it can be killed without harming others."""

    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        self.port = free_port()
        self.log = log_dir / "redis.log"
        self._args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(self._args, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """Like a crash: everything it held (queue, delayed runs, event logs) is gone."""
        self.process.kill()
        self.process.wait()

    def start_again(self) -> None:
        self.process = self._start()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    yield redis
    redis.stop()


async def test_redis_restart_mid_batch(
    chaos_env: dict[str, str], tmp_path: Path, private_redis: PrivateRedis, db: AsyncEngine
) -> None:
    env = {**chaos_env, "REDIS_URI": private_redis.uri, "N_JOBS_PER_WORKER": "2"}
    with Cluster(env, tmp_path).start(apis=1, workers=2) as cluster:
        created = await _create_runs(cluster.urls, 30, {"steps": 3, "delay": 0.1})
        await _until_running(db, [r for _, r in created])
        private_redis.kill()
        await asyncio.sleep(2.0)
        private_redis.start_again()
        statuses = await _until_done(db, [r for _, r in created], cluster)
        assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
        assert_history_is_clean(await checkpoint_rows(db, [t for t, _ in created]))
        logs = cluster.logs(tail=None)  # the outage was logged, maybe long before the end
        assert "unreachable" in logs or "reconnect" in logs.lower(), cluster.logs()
        # and the API serves streams again once Redis is back
        client = get_client(url=cluster.urls[0])
        parts = [
            p async for p in client.runs.stream(None, "counter", input={"count": 0, "log": []})
        ]
        assert parts[0].event == "metadata"
        await client.aclose()


async def _until_running(db: AsyncEngine, run_ids: list[str]) -> None:
    query = text("SELECT count(*) FROM runs WHERE status = 'running' AND run_id::text = ANY(:ids)")
    for _ in range(400):
        async with db.connect() as conn:
            if (await conn.execute(query, {"ids": run_ids})).scalar_one():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("no run started")


@pytest.mark.pooled
async def test_postgres_connections_cut_mid_batch(cluster: Cluster, db: AsyncEngine) -> None:
    cluster.start(apis=1, workers=2)
    created = await _create_runs(cluster.urls, 20, {"steps": 5, "delay": 0.2})
    await _until_running(db, [r for _, r in created])
    # What a Postgres restart looks like from the processes: every connection dropped.
    async with db.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    statuses = await _until_done(db, [r for _, r in created], cluster)
    assert {s[0] for s in statuses.values()} == {"success"}, cluster.logs()
    assert_history_is_clean(await checkpoint_rows(db, [t for t, _ in created]))
