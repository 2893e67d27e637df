"""Stores that do not answer: every command says so in one line naming the fix."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from broker import reach
from tests.chaos.test_outages import PrivateRedis
from tests.processes import BROKER, GRAPHS, Process, free_port, start_api, start_worker

COMMANDS = [
    ["migrate"],
    ["api", "--config", str(GRAPHS)],
    ["worker", "--config", str(GRAPHS)],
    ["inspect", "queue"],
]


def _closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def _broker(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BROKER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_postgres_unreachable_is_one_line(args: list[str], broker_env: dict[str, str]) -> None:
    uri = f"postgresql://broker:s3cret@127.0.0.1:{_closed_port()}/broker"
    result = _broker(args, {**broker_env, "DATABASE_URI": uri})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"broker {args[0]}: DATABASE_URI is set to "), lines[0]
    assert "postgresql://broker:***@127.0.0.1:" in lines[0]
    assert "s3cret" not in result.stderr
    assert "Postgres is not usable there" in lines[0] and "fix it" in lines[0]


@pytest.mark.parametrize("args", COMMANDS[1:3], ids=lambda a: a[0])
def test_redis_unreachable_is_one_line(args: list[str], broker_env: dict[str, str]) -> None:
    env = {**broker_env, "REDIS_URI": f"redis://127.0.0.1:{_closed_port()}/0"}
    result = _broker(args, env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"broker {args[0]}: REDIS_URI is set to redis://127.0.0.1:")
    assert "Redis is not usable there" in lines[0]
    assert "concurrent runs" not in result.stderr  # it never claimed to be ready


def test_debug_shows_the_traceback(broker_env: dict[str, str]) -> None:
    uri = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    result = _broker(["--debug", "migrate"], {**broker_env, "DATABASE_URI": uri})
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_an_unset_variable_names_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URI", raising=False)
    uri = f"redis://127.0.0.1:{_closed_port()}/0"
    with pytest.raises(reach.Unreachable) as caught:
        reach.require(reach.REDIS, uri)
    assert str(caught.value).startswith(f"REDIS_URI is not set, so the default {uri} is used")
    assert str(caught.value).endswith(
        f"by setting REDIS_URI, or start Redis at {reach.address(uri)}"
    )


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_ok_reports_redis_down(
    broker_env: dict[str, str], tmp_path: Path, private_redis: PrivateRedis
) -> None:
    api, url = start_api({**broker_env, "REDIS_URI": private_redis.uri}, tmp_path)
    try:
        assert httpx.get(f"{url}/ok?check_db=1").json() == {"ok": True}
        assert httpx.get(f"{url}/ok?check_redis=1").status_code == 200
        private_redis.kill()
        for query in ("check_redis=1", "check_db=1"):
            down = httpx.get(f"{url}/ok?{query}", timeout=10)
            assert down.status_code == 503, down.text
            assert down.json()["detail"].startswith("Redis is unreachable"), down.text
            assert "REDIS_URI" in down.json()["detail"]
        assert httpx.get(f"{url}/ok").status_code == 200  # liveness needs no store
    finally:
        api.stop()


def test_worker_says_once_redis_is_gone_and_once_it_is_back(
    broker_env: dict[str, str], tmp_path: Path, private_redis: PrivateRedis
) -> None:
    worker: Process = start_worker({**broker_env, "REDIS_URI": private_redis.uri}, tmp_path)
    try:
        _until(lambda: "concurrent runs" in worker.output())
        private_redis.kill()
        _until(lambda: "Redis is unreachable" in worker.output())
        time.sleep(3.0)  # an outage of a few seconds: several retries, no more lines
        output = worker.output()
        assert output.count("Redis is unreachable") == 1, output  # the worker's one line
        assert output.count("pub/sub connection lost") <= 1, output  # and the event bus's
        private_redis.start_again()
        _until(lambda: "Redis is reachable again" in worker.output())
        assert worker.popen.poll() is None
    finally:
        worker.stop()
    assert worker.output().count("Redis is reachable again") == 1, worker.output()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    _until(lambda: _answers(redis))
    yield redis
    redis.stop()


def _answers(redis: PrivateRedis) -> bool:
    return reach.problem(reach.REDIS, redis.uri) is None


def test_help_lists_every_command_its_defaults_and_the_environment() -> None:
    result = _broker(["--help"], {})
    assert result.returncode == 0
    for command in ("migrate", "api", "worker", "dev", "inspect"):
        assert f"\n    {command} " in result.stdout, result.stdout
    for variable in ("DATABASE_URI", "REDIS_URI", "N_JOBS_PER_WORKER", "BROKER_LOG_FORMAT"):
        assert f"\n  {variable} " in result.stdout
    dev = _broker(["dev", "--help"], {})
    assert "(default: .broker/dev.sqlite3)" in dev.stdout
    assert "(default: 2024, or the next free one)" in dev.stdout
