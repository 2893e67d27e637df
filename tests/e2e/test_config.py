"""A broken langgraph.json stops the process and names the file, attribute and error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _run(config: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", command, "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", ["api", "worker"])
def test_graph_that_fails_to_import_stops_the_process(
    tmp_path: Path, broker_env: dict[str, str], command: str
) -> None:
    (tmp_path / "bad.py").write_text("import does_not_exist_anywhere\ngraph = None\n")
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"bad": "./bad.py:graph"}}))
    result = _run(config, command, broker_env)
    assert result.returncode != 0
    assert "'bad'" in result.stderr
    assert "./bad.py:graph" in result.stderr
    assert "ModuleNotFoundError" in result.stderr and "does_not_exist_anywhere" in result.stderr


def test_missing_attribute_is_named(tmp_path: Path, broker_env: dict[str, str]) -> None:
    (tmp_path / "empty.py").write_text("x = 1\n")
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"g": "./empty.py:graph"}}))
    result = _run(config, "worker", broker_env)
    assert result.returncode != 0
    assert "attribute graph" in result.stderr and "AttributeError" in result.stderr


ECHO = Path(__file__).parent.parent / "custom" / "echo.py"


def _with_graph(tmp_path: Path, **config: object) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"g": f"{ECHO}:graph"}, **config}))
    return path


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    """What the process said last: the one line a refusal is (no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["api", "worker", "dev"])
def test_a_refused_key_stops_the_process_with_one_line(
    tmp_path: Path, broker_env: dict[str, str], command: str
) -> None:
    config = _with_graph(tmp_path, checkpointer={"path": "./saver.py:saver"})
    extra = ["--data", str(tmp_path / "dev.sqlite3")] if command == "dev" else []
    result = subprocess.run(
        [sys.executable, "-m", "broker", command, "--config", str(config), *extra],
        env=broker_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    line = _last_line(result)
    assert line.startswith(f"broker {command}: ") and "`checkpointer.path`" in line
    assert "lease" in line


def test_a_custom_app_that_fails_to_import_stops_the_api(
    tmp_path: Path, broker_env: dict[str, str]
) -> None:
    (tmp_path / "webapp.py").write_text("import no_such_web_framework\n")
    config = _with_graph(tmp_path, http={"app": "./webapp.py:app"})
    result = _run(config, "api", broker_env)
    assert result.returncode != 0
    line = _last_line(result)
    assert "http.app" in line and "./webapp.py" in line
    assert "ModuleNotFoundError" in line and "no_such_web_framework" in line
