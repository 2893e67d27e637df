"""Load the graphs a `langgraph.json` names ("./file.py:attribute"), as LangGraph's CLI does.

Both processes need them: the worker to execute runs, the API for system assistants
and thread state, so the loader lives in the shared core.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from dotenv import dotenv_values
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph_sdk.runtime import AccessContext, ServerRuntime, _ExecutionRuntime, _ReadRuntime

from broker import users
from broker.config import GraphSource, ProjectConfig, StoreSection, read_config
from broker.errors import ConfigError, GraphLoadError, Invalid

T = TypeVar("T")


@dataclass(frozen=True)
class GraphSpec:
    graph_id: str
    source: str  # as written in langgraph.json, for messages
    target: Any  # a compiled graph, or a factory returning one
    description: str | None = None  # langgraph.json's, for the graph's system assistant


class GraphRegistry:
    """The graphs of one langgraph.json, by graph id, with its `store` section (the
    store every graph is given is built from it, and attached with `attach_store`)."""

    def __init__(
        self,
        specs: dict[str, GraphSpec],
        store_section: StoreSection | None = None,
        base: Path | None = None,
    ) -> None:
        self._specs = specs
        self.store_section = store_section or StoreSection()
        self.base = base or Path.cwd()  # where the section's paths are relative to
        self.store: BaseStore | None = None

    def attach_store(self, store: BaseStore) -> None:
        """The store factories' `ServerRuntime.store` gives (graphs get it bound too)."""
        self.store = store

    @property
    def ids(self) -> list[str]:
        return list(self._specs)

    @property
    def descriptions(self) -> dict[str, str | None]:
        return {gid: spec.description for gid, spec in self._specs.items()}

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._specs

    async def get(
        self,
        graph_id: str,
        config: RunnableConfig | None = None,
        *,
        access: AccessContext = "threads.create_run",
        context: dict[str, Any] | None = None,
    ) -> Pregel[Any, Any]:
        """The graph, built by its factory (if it has one) for `access`: a run
        (`threads.create_run`, with the run's `context`), a state read or update, or
        introspection (`assistants.read`)."""
        spec = self._specs.get(graph_id)
        if spec is None:
            raise Invalid(f"Graph '{graph_id}' is not registered; known graphs: {self.ids}")
        user = users.from_config(config)
        runtime = lambda: server_runtime(access, context, user, self.store)  # noqa: E731
        return await _materialize(spec, config or {}, runtime)


def server_runtime(
    access: AccessContext,
    context: dict[str, Any] | None,
    user: users.User | None = None,
    store: BaseStore | None = None,
) -> ServerRuntime[Any]:
    """What a factory taking `runtime` gets, as langgraph_sdk.runtime describes it: the
    execution variant (with the run's context) for a run, the read variant otherwise;
    the user who made the run (custom auth), if any; the broker's store."""
    who: Any = user
    store_: Any = store  # langgraph_sdk types it as its own protocol; ours is LangGraph's
    if access == "threads.create_run":
        return _ExecutionRuntime(access_context=access, user=who, store=store_, context=context)
    return _ReadRuntime(access_context=access, user=who, store=store_)


def load_config(path: Path) -> GraphRegistry:
    """Reads langgraph.json (judged by broker/config.py) and loads its graphs."""
    return load_graphs(read_config(path))


def load_graphs(config: ProjectConfig) -> GraphRegistry:
    """Applies `env`, puts `dependencies` on sys.path, imports the graphs."""
    _apply_env(config.env, config.base)
    _add_dependencies(config.dependencies, config.base)
    return GraphRegistry(
        {gid: _load_spec(gid, source, config.base) for gid, source in config.graphs.items()},
        config.store,
        config.base,
    )


def _apply_env(env: Any, base: Path) -> None:
    if isinstance(env, str):
        env = dotenv_values(base / env)
    for key, value in (env or {}).items():
        if value is not None:
            os.environ.setdefault(key, str(value))


def _add_dependencies(dependencies: list[str], base: Path) -> None:
    for dep in dependencies:
        if dep.startswith("."):
            _prepend_path(base / dep)


def _prepend_path(path: Path) -> None:
    resolved = str(path.resolve())
    if resolved not in sys.path:
        sys.path.insert(0, resolved)


def _load_spec(graph_id: str, source: GraphSource, base: Path) -> GraphSpec:
    try:
        target = load_object(source.location, base)
    except SourceFormError as exc:
        raise GraphLoadError(f"Graph '{graph_id}': {exc}") from exc
    except Exception as exc:
        location, _, attribute = source.location.rpartition(":")
        raise GraphLoadError(
            f"Failed to load graph '{graph_id}' from '{source.location}' "
            f"(file {location}, attribute {attribute}): {type(exc).__name__}: {exc}"
        ) from exc
    return GraphSpec(graph_id, source.location, target, source.description)


class SourceFormError(ValueError):
    """A source is not "./file.py:attribute" (nor "package.module:attribute")."""


def load_object(source: str, base: Path) -> Any:
    """The attribute a "./file.py:attribute" source names, the file relative to `base`
    (as langgraph.json writes graphs and http.app); import errors propagate."""
    location, _, attribute = source.rpartition(":")
    if not location or not attribute:
        raise SourceFormError(f"'{source}' is not of the form './file.py:attr'")
    return getattr(_import(location, base), attribute)


def load_typed(source: str, base: Path, kind: type[T], what: str, expected: str) -> T:
    """The `kind` that `source` names (an auth object, a custom app); any failure stops
    the process with one line (ConfigError) naming `what`, the source and the error."""
    failed = f"Failed to load {what} from '{source}'"
    try:
        target = load_object(source, base)
    except Exception as exc:
        raise ConfigError(f"{failed}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(target, kind):
        raise ConfigError(f"{failed}: it is a {type(target).__name__}, not {expected}")
    return target


def _import(location: str, base: Path) -> ModuleType:
    if not location.endswith(".py"):
        return importlib.import_module(location)
    path = (base / location).resolve()
    _prepend_path(path.parent)  # graphs import their sibling modules
    name = f"_broker_graph_{path.stem}_{abs(hash(str(path)))}"
    if name in sys.modules:  # several graphs of one file share one import of it
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


async def _materialize(
    spec: GraphSpec, config: RunnableConfig, runtime: Callable[[], ServerRuntime[Any]]
) -> Pregel[Any, Any]:
    target = spec.target
    if isinstance(target, StateGraph):
        target = target.compile()
    if not isinstance(target, Pregel) and callable(target):
        target = _call_factory(target, config, runtime)
        if inspect.isawaitable(target):
            target = await target
    if isinstance(target, StateGraph):
        target = target.compile()
    if not isinstance(target, Pregel):
        raise GraphLoadError(
            f"Graph '{spec.graph_id}' ({spec.source}) is not a compiled graph, nor a function "
            f"(sync or async) taking a RunnableConfig and/or a ServerRuntime that returns one; "
            f"it gave {type(target).__name__}"
        )
    return target


def _call_factory(
    factory: Callable[..., Any], config: RunnableConfig, runtime: Callable[[], ServerRuntime[Any]]
) -> Any:
    """Calls a factory with what its parameters ask for, as LangGraph does: one named
    `runtime` (or annotated ServerRuntime) gets the runtime, any other the config."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in inspect.signature(factory).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or (
            parameter.default is not parameter.empty
            and parameter.name != "config"
            and not _wants_runtime(parameter)
        ):
            continue  # *args, **kwargs and other optional parameters keep their defaults
        value = runtime() if _wants_runtime(parameter) else config
        if parameter.kind == parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = value
        else:
            args.append(value)
    return factory(*args, **kwargs)


def _wants_runtime(parameter: inspect.Parameter) -> bool:
    return parameter.name == "runtime" or "ServerRuntime" in str(parameter.annotation)
