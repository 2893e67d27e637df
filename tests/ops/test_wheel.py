"""The built wheel, installed (not editable) in a fresh venv, migrates and serves runs.

Offline and quick: the wheel is built without build isolation and installed with
--no-deps --no-index; the fresh venv reaches this venv's dependencies through a .pth
line (which puts the directory on sys.path without running this venv's editable hook).
"""

from __future__ import annotations

import asyncio
import shutil
import site
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.conftest import _admin, _plain, _with_database
from tests.processes import GRAPHS, free_port
from tests.services import Services

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "broker", "api", "worker", "alembic")


def _run(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; returns its bin directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    source.mkdir()
    for name in SOURCES:  # a clean copy: no build/ or egg-info left in the checkout
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=_caches)
        else:
            shutil.copy2(path, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    built = _run([*build, "-w", str(tmp / "dist"), "."], source)
    assert built.returncode == 0, built.stderr
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], tmp)
    assert made.returncode == 0, made.stderr
    (_site_packages(venv) / "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    wheel = next((tmp / "dist").glob("langgraph_broker-*.whl"))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    done = _run([*pip, str(wheel)], tmp)
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def _caches(_: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "build") or n.endswith(".egg-info")]


def _site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def test_the_wheel_is_what_runs(installed: Path, tmp_path: Path) -> None:
    code = "import broker.migrate as m; print(m.MIGRATIONS)"
    where = _run([str(installed / "python"), "-c", code], tmp_path)
    assert where.stdout.strip().startswith(str(installed.parent)), where
    assert (Path(where.stdout.strip()) / "versions").is_dir()


def test_migrate_from_the_wheel(
    installed: Path, tmp_path: Path, services: Services, broker_env: dict[str, str]
) -> None:
    name = f"broker_wheel_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(services.database_uri, f'CREATE DATABASE "{name}"'))
    try:
        env = {**broker_env, "DATABASE_URI": _with_database(_plain(services.database_uri), name)}
        migrated = _run([str(installed / "broker"), "migrate"], tmp_path, env)
        assert migrated.returncode == 0, migrated.stderr
        assert "database is at the latest migration" in migrated.stderr
    finally:
        asyncio.run(_admin(services.database_uri, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_run_through_dev_from_the_wheel(
    installed: Path, tmp_path: Path, broker_env: dict[str, str]
) -> None:
    port = free_port()
    argv = [str(installed / "broker"), "dev", "--config", str(GRAPHS), "--port", str(port)]
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        dev = subprocess.Popen(argv, cwd=tmp_path, env=broker_env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        _until_up(url, dev, log)
        client = get_sync_client(url=url)
        try:
            result = client.runs.wait(None, "counter", input={"count": 0, "log": []})
        finally:
            client.close()
        assert result == {"count": 111, "log": ["one", "two", "three"]}
        assert (tmp_path / ".broker" / "dev.sqlite3").exists()  # migrated in its own cwd
        assert f"Try it:     curl {url}/info" in log.read_text()  # no examples/ here
    finally:
        dev.terminate()
        dev.wait(30)


def _until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/ok").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"broker dev from the wheel never answered: {log.read_text()}")
