"""BROKER_LOG_FORMAT=json: every log line a process writes is one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.processes import start_api


def test_json_logs_with_an_access_line(broker_env: dict[str, str], tmp_path: Path) -> None:
    api, url = start_api({**broker_env, "BROKER_LOG_FORMAT": "json"}, tmp_path)
    try:
        assert httpx.get(f"{url}/info").status_code == 200
    finally:
        api.stop()
    logged = [line for line in api.output().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in logged]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert any('"GET /info HTTP/1.1" 200' in e["message"] for e in access), entries
    # The process's own lines (listen, stop) are for people: plain text on stderr.
    assert f"broker api: listening on {url}" in api.output()
    assert api.output().rstrip().endswith("broker api: stopped")
