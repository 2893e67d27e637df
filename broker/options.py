"""A run's options: built once from the request, stored as `runs.kwargs`, parsed once when
the run is read.

The stored form (`RunKwargs`) is also what LangGraph's API returns to clients as a
run's `kwargs`, so its keys and shapes stay exactly as they are; code reads the typed
`RunOptions` instead of string keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypedDict, cast

from broker.errors import MalformedRun


class RunKwargs(TypedDict):
    """`runs.kwargs` as stored and as the API returns it."""

    input: Any
    command: dict[str, Any] | None
    config: dict[str, Any]
    context: dict[str, Any]
    stream_mode: list[str]
    interrupt_before: list[str] | str | None
    interrupt_after: list[str] | str | None
    webhook: str | None
    feedback_keys: list[str] | None
    temporary: bool
    subgraphs: bool
    resumable: bool
    durability: str | None
    on_completion: str


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What a run asked for, typed. Defaults are the contract's (and fill keys a row lacks)."""

    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    stream_mode: tuple[str, ...] = ("values",)
    interrupt_before: list[str] | str | None = None
    interrupt_after: list[str] | str | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    temporary: bool = False
    subgraphs: bool = False
    resumable: bool = False
    durability: str | None = None
    on_completion: str = "delete"

    @classmethod
    def parse(cls, kwargs: Mapping[str, Any]) -> RunOptions:
        """Never raises: a run with odd kwargs can still be listed; `graph_id` says what lacks."""
        return cls(
            input=kwargs.get("input"),
            command=kwargs.get("command") or None,
            config=dict(kwargs.get("config") or {}),
            context=dict(kwargs.get("context") or {}),
            stream_mode=_modes(kwargs.get("stream_mode")),
            interrupt_before=kwargs.get("interrupt_before"),
            interrupt_after=kwargs.get("interrupt_after"),
            webhook=kwargs.get("webhook"),
            feedback_keys=kwargs.get("feedback_keys"),
            temporary=bool(kwargs.get("temporary")),
            subgraphs=bool(kwargs.get("subgraphs")),
            resumable=bool(kwargs.get("resumable")),
            durability=kwargs.get("durability"),
            on_completion=kwargs.get("on_completion") or "delete",
        )

    def wire(self) -> RunKwargs:
        stored = {f.name: getattr(self, f.name) for f in fields(self)}
        return cast(RunKwargs, stored | {"stream_mode": list(self.stream_mode)})

    @property
    def configurable(self) -> dict[str, Any]:
        return dict(self.config.get("configurable") or {})

    @property
    def graph_id(self) -> str:
        """The graph to run, which every run's config names (see `runspec.run_config`)."""
        graph_id = self.configurable.get("graph_id")
        if not isinstance(graph_id, str) or not graph_id:
            raise MalformedRun(
                "The run's config has no configurable.graph_id, so there is no graph to run: "
                "it was not created through this broker's API, or its row was edited."
            )
        return graph_id

    @property
    def keeps_thread(self) -> bool:
        """A stateless run asked to keep its thread (`on_completion="keep"`)."""
        return self.on_completion == "keep"

    def graph_options(self) -> dict[str, Any]:
        """The keyword arguments of `astream` this run sets (the rest stay LangGraph's)."""
        options: dict[str, Any] = {}
        for name in ("interrupt_before", "interrupt_after", "durability", "context"):
            value = getattr(self, name)
            if value:
                options[name] = value
        return options

    def resumed(self) -> RunOptions:
        """A retry that continues from the last checkpoint: no input, command, checkpoint_id."""
        configurable = {k: v for k, v in self.configurable.items() if k != "checkpoint_id"}
        config = {**self.config, "configurable": configurable}
        return replace(self, input=None, command=None, config=config)


def _modes(stream_mode: Any) -> tuple[str, ...]:
    if not stream_mode:
        return ("values",)
    return (stream_mode,) if isinstance(stream_mode, str) else tuple(stream_mode)
