"""langgraph.json fails closed: every documented key is honoured, refused with a reason,
or accepted with an info line; an unknown key is a warning naming it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from broker.config import KEYS, HttpConfig, Key, judge, read_config
from broker.embeddings import load_embeddings
from broker.errors import ConfigError, GraphLoadError
from broker.graphs import load_config


def _leaves(keys: Mapping[str, Key], prefix: str = "") -> Iterator[tuple[str, Key]]:
    for name, key in keys.items():
        yield f"{prefix}{name}", key
        if key.keys is not None:
            yield from _leaves(key.keys, f"{prefix}{name}.")


def _nested(path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    config: dict[str, Any] = {leaf: value}
    for parent in reversed(parents):
        config = {parent: config}
    return config


ALL_KEYS = list(_leaves(KEYS))


@pytest.mark.parametrize(("path", "key"), ALL_KEYS, ids=[p for p, _ in ALL_KEYS])
def test_every_documented_key_has_a_verdict(path: str, key: Key) -> None:
    sample: Any = {"something": 1} if key.keys is not None else ["something"]
    findings = judge(_nested(path, sample))
    mine = [f for f in findings if f.key == path]
    if key.verdict in ("honoured", "accepted"):
        assert mine == []
    elif key.verdict == "build":
        assert [f.level for f in mine] == ["info"]
        assert f"`{path}`" in mine[0].message and "ignored at run time by design" in mine[0].message
    else:
        assert [f.level for f in mine] == ["refused"]
        assert mine[0].message == f"`{path}` is {key.why}"


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("checkpointer.path", "fences"),
        ("http.mount_prefix", "not supported yet"),
        ("encryption", "not supported yet"),
    ],
)
def test_refused_keys_say_why(path: str, words: str) -> None:
    (finding,) = judge(_nested(path, {"x": 1}))
    assert finding.level == "refused" and words in finding.message


def test_accepted_and_honoured_keys_say_nothing() -> None:
    config = {
        "$schema": "https://langgra.ph/schema.json",
        "graphs": {"g": "./g.py:graph"},
        "env": ".env",
        "dependencies": ["."],
        "auth": {"path": "./auth.py:auth"},
        "http": {"app": "./app.py:app", "disable_webhooks": True, "logging_headers": {}},
    }
    assert judge(config) == []


@pytest.mark.parametrize("empty", [None, {}, []])
def test_a_refused_key_asking_nothing_holds(empty: Any) -> None:
    assert judge({"webhooks": empty, "store": {"index": empty}, "checkpointer": empty}) == []


@pytest.mark.parametrize("section", ["http", "store", "checkpointer", "http.cors"])
def test_a_section_must_be_an_object(section: str) -> None:
    (finding,) = judge(_nested(section, "yes"))
    assert finding.level == "refused" and finding.message == f"`{section}` must be an object"


@pytest.mark.parametrize("path", ["colour", "http.corz", "http.cors.allow_origin", "store.size"])
def test_unknown_keys_are_warnings_naming_them(path: str) -> None:
    (finding,) = judge(_nested(path, True))
    assert finding.level == "warning" and f"`{path}`" in finding.message


def _write(tmp_path: Path, **config: Any) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"g": "./g.py:graph"}, **config}))
    return path


def test_a_refused_key_stops_reading_with_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, encryption={"path": "./e.py:e"}, priority={"x": 1})
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "`encryption`" in message and "`priority`" in message and str(path) in message


def test_the_store_section_is_typed(tmp_path: Path) -> None:
    store = {
        "index": {"embed": "./e.py:embed", "dims": 8, "fields": ["text"]},
        "ttl": {"default_ttl": 0.5, "refresh_on_read": False, "sweep_interval_minutes": 2},
    }
    read = read_config(_write(tmp_path, store=store)).store
    assert read.index is not None and (read.index.dims, read.index.fields) == (8, ["text"])
    assert read.ttl is not None and (read.ttl.default_ttl, read.ttl.refresh_on_read) == (0.5, False)
    with pytest.raises(ConfigError, match=r"`store\.index\.dims`"):
        read_config(_write(tmp_path, store={"index": {"embed": "./e.py:embed", "dims": 0}}))
    with pytest.raises(ConfigError, match=r"`store\.ttl\.default_ttl`"):
        read_config(_write(tmp_path, store={"ttl": {"default_ttl": -1}}))


def test_embeddings_are_a_path_or_a_provider_string(tmp_path: Path) -> None:
    (tmp_path / "e.py").write_text("def embed(texts):\n    return [[1.0, 0.0] for _ in texts]\n")
    assert load_embeddings("./e.py:embed", tmp_path).embed_query("x") == [1.0, 0.0]
    with pytest.raises(
        ConfigError, match=re.escape("store.index.embed: failed to load './e.py:nope'")
    ):
        load_embeddings("./e.py:nope", tmp_path)
    with pytest.raises(ConfigError, match="needs the `langchain` package"):
        load_embeddings("openai:text-embedding-3-small", tmp_path)


def test_info_and_warnings_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, dockerfile_lines=["RUN true"], colour="blue")
    with caplog.at_level(logging.INFO, logger="broker.config"):
        read_config(path)
    levels = {r.getMessage().split("`")[1]: r.levelno for r in caplog.records}
    assert levels == {"dockerfile_lines": logging.INFO, "colour": logging.WARNING}


@pytest.mark.parametrize(
    ("http", "named"),
    [
        ({"disable_threads": "sometimes"}, "`http.disable_threads`"),
        ({"cors": {"allow_origins": "https://a.example"}}, "`http.cors.allow_origins`"),
        ({"cors": {"allow_origin_regex": "("}}, "`http.cors.allow_origin_regex`"),
        ({"app": "webapp.py"}, "`http.app`"),
        ({"middleware_order": "random"}, "`http.middleware_order`"),
    ],
)
def test_a_mistyped_http_key_is_refused_by_name(
    tmp_path: Path, http: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        read_config(_write(tmp_path, http=http))


def test_http_section_is_typed(tmp_path: Path) -> None:
    http = {
        "app": "./app.py:app",
        "disable_runs": True,
        "enable_custom_route_auth": None,  # null means the default
        "configurable_headers": {"include": ["x-a-*"], "exclude": ["x-a-secret"]},
        "cors": {"allow_origins": ["https://a.example"], "max_age": 5},
    }
    config = read_config(_write(tmp_path, http=http)).http
    assert config.app == "./app.py:app" and config.disable_runs
    assert not config.enable_custom_route_auth and not config.disable_threads
    assert config.configurable_headers is not None
    assert config.configurable_headers.includes == ["x-a-*"]
    assert config.configurable_headers.excludes == ["x-a-secret"]
    assert config.cors is not None and config.cors.max_age == 5
    assert read_config(_write(tmp_path)).http == HttpConfig()


def test_a_graph_may_be_described(tmp_path: Path) -> None:
    echo = f"{Path(__file__).parent.parent / 'custom' / 'echo.py'}:graph"
    path = tmp_path / "langgraph.json"
    graphs = {"plain": echo, "described": {"path": echo, "description": "D"}}
    path.write_text(json.dumps({"graphs": graphs}))
    assert load_config(path).descriptions == {"plain": None, "described": "D"}
    path.write_text(json.dumps({"graphs": {"bad": {"description": "no path"}}}))
    with pytest.raises(GraphLoadError, match="graph 'bad'"):
        load_config(path)
