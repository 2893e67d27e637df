"""The README's quick start (examples/quickstart.py) runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart.py"


def test_quickstart_prints_streamed_updates(server: str) -> None:
    result = subprocess.run(
        [sys.executable, str(QUICKSTART), server], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["metadata"] + ["updates"] * 3
    assert [line.split(" ", 2)[1] for line in lines[1:]] == ["{'agent':", "{'tools':", "{'agent':"]
    assert "The tool says: It's always sunny in sf." in lines[-1]


BACKGROUND = QUICKSTART.parent / "background.py"


def test_background_example_joins_later(server: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BACKGROUND), server], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("started run ") and lines[0].endswith(" pending")
    assert lines[-1] == "run ended: success"
    ticks = [line for line in lines if line.startswith("values ")]
    assert ticks and "'done': 5" in ticks[-1]
    assert "'done': 1}" not in "\n".join(ticks)  # joined later: the first tick was before
