"""The README's code is code the tests run, and the dev banner's command works.

Each Python or JavaScript block of README.md must appear, as written, in an example
file that a test executes: examples/quickstart.py and examples/background.py
(tests/e2e/test_quickstart.py), tests/js/stream.mjs (tests/e2e/test_js_client.py),
examples/stream_subgraphs.py and examples/crons.py (below). Indentation aside: a README
block may show a function's body.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Process, start_dev

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = [
    ROOT / "examples" / "quickstart.py",
    ROOT / "examples" / "background.py",
    ROOT / "examples" / "stream_subgraphs.py",
    ROOT / "examples" / "crons.py",
    ROOT / "tests" / "js" / "stream.mjs",
]
_BLOCK = re.compile(r"```(python|js)\n(.*?)```", re.S)


def test_every_readme_example_is_in_an_executed_file() -> None:
    blocks = _BLOCK.findall((ROOT / "README.md").read_text())
    assert {kind for kind, _ in blocks} == {"python", "js"}
    sources = [_unindented(path.read_text()) for path in EXECUTED]
    for kind, code in blocks:
        found = any(_unindented(code) in source for source in sources)
        assert found, f"README {kind} block not run:\n{code}"


def _unindented(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines())


@pytest.fixture(scope="module")
def examples_dev(
    broker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, str]]:
    """`broker dev` on the examples, started from the checkout as `make run` does."""
    logs = tmp_path_factory.mktemp("examples-dev")
    config = ROOT / "examples" / "langgraph.json"
    process, url = start_dev(broker_env, logs, logs / "dev.sqlite3", config=config)
    yield process, url
    process.stop()


def test_the_banner_command_works(examples_dev: tuple[Process, str]) -> None:
    process, url = examples_dev
    deadline = time.monotonic() + 30
    while "Try it:" not in process.output():  # printed just after it starts answering
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.05)
    [line] = [line for line in process.output().splitlines() if "Try it:" in line]
    command = line.split("Try it:", 1)[1].strip()
    assert command.endswith(f"examples/quickstart.py {url}")
    result = subprocess.run(
        shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("metadata ")


def test_the_subgraph_example_streams_inner_nodes(examples_dev: tuple[Process, str]) -> None:
    _, url = examples_dev
    script = ROOT / "examples" / "stream_subgraphs.py"
    result = subprocess.run(
        [sys.executable, str(script), url], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    events = [line.split(" ", 1)[0] for line in result.stdout.splitlines()]
    assert events[0] == "metadata"
    inner = [e for e in events if e.startswith("updates|research:")]
    assert len(inner) == 2  # search, then summarize, inside the research node
    assert "found three papers on llamas" in result.stdout


def test_the_cron_example_schedules_and_cleans_up(examples_dev: tuple[Process, str]) -> None:
    _, url = examples_dev
    script = ROOT / "examples" / "crons.py"
    result = subprocess.run(
        [sys.executable, str(script), url], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("next run: 20"), result.stdout
