"""Run options: built once from the request, stored in the API's shape, parsed once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from broker.errors import MalformedRun
from broker.events import parse_end
from broker.models import Assistant, Claim, MultitaskStrategy, Run, RunRequest, RunStatus
from broker.options import RunOptions
from broker.outcome import (
    end_marker,
    error_frame,
    error_payload,
    exception_payload,
    failed,
    failure_end,
)
from broker.runspec import run_row

KWARGS_KEYS = {
    "input",
    "command",
    "config",
    "context",
    "stream_mode",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "feedback_keys",
    "temporary",
    "subgraphs",
    "resumable",
    "durability",
    "on_completion",
}


def _assistant() -> Assistant:
    now = datetime.now(UTC)
    return Assistant(uuid4(), "chat", "chat", None, {}, {}, {}, 1, now, now)


def _run(kwargs: dict[str, Any]) -> Run:
    now = datetime.now(UTC)
    return Run(
        uuid4(), uuid4(), uuid4(), now, now, RunStatus.PENDING, {}, kwargs, MultitaskStrategy.REJECT
    )


def test_the_stored_kwargs_keep_their_shape_and_parse_back() -> None:
    request = RunRequest(
        assistant_id="chat",
        input={"q": 1},
        stream_mode=["updates", "messages-tuple"],
        stream_subgraphs=True,
        stream_resumable=True,
        interrupt_before="*",
        on_completion="keep",
        checkpoint_id="c1",
    )
    row = run_row(uuid4(), uuid4(), request, _assistant(), temporary=True)
    kwargs = row["kwargs"]
    assert set(kwargs) == KWARGS_KEYS
    assert kwargs["stream_mode"] == ["updates", "messages-tuple"]
    options = _run(dict(kwargs)).options
    assert options.wire() == kwargs
    assert (options.subgraphs, options.resumable, options.temporary) == (True, True, True)
    assert options.keeps_thread
    assert options.graph_id == "chat"
    assert options.graph_options() == {"interrupt_before": "*"}
    assert Claim(_run(dict(kwargs)), 1, temporary=True).options == options


def test_a_run_without_a_graph_id_is_refused_by_name() -> None:
    options = _run({"config": {"configurable": {}}}).options  # parsing itself never fails
    assert options.stream_mode == ("values",) and not options.resumable
    with pytest.raises(MalformedRun, match=r"no configurable\.graph_id"):
        _ = options.graph_id


def test_a_resumed_run_drops_its_input_command_and_checkpoint_id() -> None:
    options = RunOptions(
        input={"a": 1},
        command={"resume": "yes"},
        config={"configurable": {"graph_id": "g", "checkpoint_id": "c1"}, "tags": ["t"]},
    )
    resumed = options.resumed()
    assert (resumed.input, resumed.command) == (None, None)
    assert resumed.config == {"configurable": {"graph_id": "g"}, "tags": ["t"]}
    assert options.configurable["checkpoint_id"] == "c1"  # the original is untouched


def test_the_end_of_a_run_is_told_in_one_shape() -> None:
    error = exception_payload(TimeoutError("upstream took too long"))
    assert error == error_payload("TimeoutError", "upstream took too long")
    outcome = failed(error)
    assert (outcome.status, outcome.output, outcome.error) == (
        RunStatus.ERROR,
        {"__error__": error},
        error,
    )
    assert parse_end(failure_end(error)) == {"status": "error", "output": {"__error__": error}}
    assert parse_end(end_marker(RunStatus.INTERRUPTED)) == {"status": "interrupted", "output": {}}
    assert error_frame(error).startswith(b"event: error\r\ndata: {")
