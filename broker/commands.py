"""A LangGraph Command from its JSON form (a run's `command`, a superstep's update)."""

from __future__ import annotations

from typing import Any

from langgraph.types import Command, Send


def to_command(command: dict[str, Any]) -> Command[Any]:
    return Command(
        resume=command.get("resume"),
        update=command.get("update"),
        goto=_goto(command.get("goto")),
    )


def _goto(goto: Any) -> Any:
    if goto is None:
        return ()
    if isinstance(goto, list):
        return [_goto(g) for g in goto]
    if isinstance(goto, dict):
        return Send(goto["node"], goto.get("input"))
    return goto
