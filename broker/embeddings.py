"""store.index.embed, resolved as LangGraph resolves it: a path to a function (sync or
async, list[str] -> list[list[float]]) or to a LangChain `Embeddings`, or a
"provider:model" string for `langchain.embeddings.init_embeddings`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from langchain_core.embeddings import Embeddings
from langgraph.store.base import ensure_embeddings

from broker.errors import ConfigError
from broker.graphs import load_object


def load_embeddings(embed: str, base: Path) -> Embeddings:
    """The embeddings `embed` names; anything that fails stops the process (ConfigError)."""
    location = embed.rpartition(":")[0]
    if "." in location or "/" in location:  # "./file.py:attr", "package.module:attr"
        return _from_path(embed, base)
    return _from_provider(embed)


def _from_path(embed: str, base: Path) -> Embeddings:
    failed = f"store.index.embed: failed to load '{embed}'"
    try:
        target = load_object(embed, base)
    except Exception as exc:
        raise ConfigError(f"{failed}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(target, Embeddings) and not callable(target):
        raise ConfigError(
            f"{failed}: it is a {type(target).__name__}, not a function or an Embeddings"
        )
    return ensure_embeddings(target)


def _from_provider(embed: str) -> Embeddings:
    if importlib.util.find_spec("langchain") is None:  # init_embeddings lives there
        raise ConfigError(
            f"store.index.embed: '{embed}' is a provider string, which needs the `langchain` "
            "package (pip install 'langchain>=0.3.9' and the provider's package, e.g. "
            "langchain-openai); or name a function: './embeddings.py:embed'"
        )
    try:
        return ensure_embeddings(embed)
    except Exception as exc:
        raise ConfigError(f"store.index.embed: '{embed}': {type(exc).__name__}: {exc}") from exc
