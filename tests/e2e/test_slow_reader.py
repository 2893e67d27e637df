"""A stalled SSE client costs the API a bounded buffer, not the run's output.

Real `broker api` + `broker worker`; one run streams ~40 MB while a second client of
it, with a 4 KiB receive buffer, reads nothing until the run is over. The API's
resident memory must stay far below what the run emitted; the normal client gets every
event; the stalled one gets an `error` event (a plain run) or, a resumable run's, every
event, read on from the run's log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.slow_reader import custom_indexes, last_event, stalled_reader_run
from tests.processes import start_api, start_worker

BUFFER = 1024 * 1024
EVENTS, PAD = 4000, 10_000  # ~40 MB of events
MB = 1024 * 1024


@pytest.fixture(scope="module")
def api(
    broker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    env = {**broker_env, "BROKER_STREAM_BUFFER_BYTES": str(BUFFER), "BROKER_SHUTDOWN_GRACE": "2"}
    logs: Path = tmp_path_factory.mktemp("slow-reader-logs")
    api, url = start_api(env, logs)
    worker = start_worker(env, logs)
    try:
        yield url, api.popen.pid
    finally:
        worker.stop()
        api.stop()


@pytest.mark.parametrize("resumable", [False, True], ids=["plain", "resumable"])
async def test_a_stalled_reader_costs_a_bounded_buffer(
    api: tuple[str, int], resumable: bool
) -> None:
    url, pid = api
    outcome = await stalled_reader_run(url, pid, EVENTS, PAD, resumable=resumable)
    assert outcome.normal == list(range(EVENTS))  # the other reader lost nothing
    # The run emitted ~40 MB; what the API holds for the stalled client is its buffer
    # plus transit (socket buffers, one batch in hand): a generous 12x the buffer.
    assert outcome.rss_peak - outcome.rss_before < 12 * BUFFER, outcome.figures()
    name, data = last_event(outcome.stalled)
    if resumable:
        assert custom_indexes(outcome.stalled) == list(range(EVENTS))
    else:
        assert name == "error" and b"SlowReader" in data
        assert b"BROKER_STREAM_BUFFER_BYTES" in data


async def test_a_stalled_reader_of_a_thread_stream_is_told_and_dropped(
    api: tuple[str, int],
) -> None:
    url, pid = api
    outcome = await stalled_reader_run(url, pid, EVENTS, PAD, resumable=False, thread=True)
    assert outcome.normal == list(range(EVENTS))
    assert outcome.rss_peak - outcome.rss_before < 12 * BUFFER, outcome.figures()
    name, data = last_event(outcome.stalled)
    assert name == "error" and b"SlowReader" in data
