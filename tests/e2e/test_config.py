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
