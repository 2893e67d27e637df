"""Assistants through the real SDK: stored, versioned, introspected, and used by runs.

Every test creates assistants of the `configured` and `factory` graphs only (other
tests count the system assistants of the rest), and each public method of
`client.assistants` is called here: `test_every_sdk_method_is_exercised` fails when
the SDK grows one that is not.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk._async.assistants import AssistantsClient
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError
from langgraph_sdk.schema import Config

from tests.e2e.helpers import as_dict

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def _marker() -> dict[str, str]:
    return {"test_marker": uuid.uuid4().hex}


def test_every_sdk_method_is_exercised() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(AssistantsClient, inspect.isfunction)
        if not name.startswith("_")
    }
    called = set(re.findall(r"\.assistants\.(\w+)\(", Path(__file__).read_text()))
    assert public - called == set(), "SDK methods no test here calls"


async def test_create_and_if_exists(client: LangGraphClient) -> None:
    aid = str(uuid.uuid4())
    created = await client.assistants.create(
        "configured",
        {"configurable": {"greeting": "hi"}},
        context={"tone": "warm"},
        metadata={"team": "a"},
        assistant_id=aid,
        name="Greeter",
        description="says hi",
    )
    assert created["assistant_id"] == aid
    assert (created["graph_id"], created["version"]) == ("configured", 1)
    assert created["config"] == {"configurable": {"greeting": "hi"}}
    assert (created["context"], created["metadata"]) == ({"tone": "warm"}, {"team": "a"})
    assert (created["name"], created["description"]) == ("Greeter", "says hi")
    assert await client.assistants.get(aid) == created
    with pytest.raises(ConflictError):
        await client.assistants.create("configured", assistant_id=aid)
    same = await client.assistants.create("factory", assistant_id=aid, if_exists="do_nothing")
    assert same == created
    untitled = await client.assistants.create("configured")
    assert (untitled["name"], untitled["description"], untitled["config"]) == ("Untitled", None, {})
    with pytest.raises(NotFoundError, match="not-a-graph"):
        await client.assistants.create("not-a-graph")
    with pytest.raises(UnprocessableEntityError, match="graph_id"):
        await client.assistants.create(None)


@pytest.mark.parametrize("if_exists", ["raise", "do_nothing"])
async def test_concurrent_creates_of_one_id(client: LangGraphClient, if_exists: Any) -> None:
    aid = str(uuid.uuid4())
    results = await asyncio.gather(
        *(
            client.assistants.create("configured", assistant_id=aid, if_exists=if_exists)
            for _ in range(30)
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, ConflictError) for r in refused), refused
    assert {r["assistant_id"] for r in created} == {aid}
    if if_exists == "raise":
        assert len(created) == 1
    else:
        assert len(created) == 30
        assert len({r["created_at"] for r in created}) == 1  # all the one assistant
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [1]


async def test_patch_makes_versions_and_set_latest_restores_one(client: LangGraphClient) -> None:
    first = await client.assistants.create(
        "configured", {"configurable": {"greeting": "v1"}}, metadata={"a": 1}, name="One"
    )
    aid = first["assistant_id"]
    second = await client.assistants.update(
        aid, config={"configurable": {"greeting": "v2"}}, metadata={"b": 2}, context={"tone": "x"}
    )
    assert second["version"] == 2
    assert second["metadata"] == {"a": 1, "b": 2}  # merged
    assert second["config"] == {"configurable": {"greeting": "v2"}}  # replaced
    assert (second["name"], second["context"]) == ("One", {"tone": "x"})
    renamed = await client.assistants.update(aid, name="Three", description="third")
    assert (renamed["version"], renamed["name"], renamed["description"]) == (3, "Three", "third")
    assert renamed["config"] == second["config"]

    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[2]["config"] == {"configurable": {"greeting": "v1"}}
    assert "updated_at" not in versions[0]
    only_b = await client.assistants.get_versions(aid, metadata={"b": 2}, limit=1, offset=1)
    assert [v["version"] for v in only_b] == [2]

    restored = await client.assistants.set_latest(aid, 1)
    assert (restored["version"], restored["name"], restored["metadata"]) == (1, "One", {"a": 1})
    assert await client.assistants.get(aid) == restored
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(aid, 99)
    after = await client.assistants.update(aid, metadata={"c": 3})
    assert after["version"] == 4  # the highest yet, not current + 1
    assert after["metadata"] == {"a": 1, "c": 3}
    with pytest.raises(NotFoundError):
        await client.assistants.update(aid, graph_id="not-a-graph")
    with pytest.raises(NotFoundError):
        await client.assistants.update(str(uuid.uuid4()), name="x")


async def test_null_patch_fields_are_refused(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        made = (await http.post("/assistants", json={"graph_id": "configured"})).json()
        answer = await http.patch(f"/assistants/{made['assistant_id']}", json={"config": None})
        assert answer.status_code == 422
        assert "config" in answer.json()["detail"]
        latest = await http.post(
            f"/assistants/{made['assistant_id']}/latest", params={"version": 1}
        )
        assert (latest.status_code, latest.json()["version"]) == (200, 1)
        bad = await http.get(f"/assistants/{made['assistant_id']}/graph", params={"xray": "deep"})
        assert bad.status_code == 422
        assert "xray" in bad.json()["detail"]
        bad = await http.post("/assistants/search", json={"sort_by": "bogus"})
        assert (bad.status_code, "sort_by" in bad.json()["detail"]) == (422, True)


async def test_delete(client: LangGraphClient) -> None:
    made = await client.assistants.create("configured")
    aid = made["assistant_id"]
    await client.assistants.update(aid, name="v2")
    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)
    with pytest.raises(NotFoundError):  # its versions went with it
        await client.assistants.get_versions(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.delete(aid)
    system = str(uuid.uuid5(SYSTEM_NAMESPACE, "configured"))
    with pytest.raises(ConflictError, match="system assistant"):
        await client.assistants.delete(system)
    assert (await client.assistants.get(system))["graph_id"] == "configured"


async def test_delete_with_its_threads(client: LangGraphClient) -> None:
    made = await client.assistants.create("configured")
    aid = made["assistant_id"]
    result = await client.runs.wait(None, aid, input={"question": "q"}, on_completion="keep")
    assert as_dict(result)["seen"]["assistant_id"] == aid
    mine = await client.threads.create(metadata={"assistant_id": aid})
    other = await client.threads.create(metadata={"assistant_id": str(uuid.uuid4())})
    assert len(await client.threads.search(metadata={"assistant_id": aid})) == 2
    await client.assistants.delete(aid, delete_threads=True)
    assert await client.threads.search(metadata={"assistant_id": aid}) == []
    with pytest.raises(NotFoundError):
        await client.threads.get(mine["thread_id"])
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]


async def test_search_and_count(client: LangGraphClient) -> None:
    marker = _marker()
    alpha = await client.assistants.create("configured", metadata=marker, name="Alpha 50%")
    beta = await client.assistants.create("factory", metadata=marker, name="beta")
    found = await client.assistants.search(metadata=marker, sort_by="name", sort_order="asc")
    assert [a["assistant_id"] for a in found] == [alpha["assistant_id"], beta["assistant_id"]]
    assert [a["name"] for a in await client.assistants.search(metadata=marker, name="ALPHA")] == [
        "Alpha 50%"
    ]
    assert await client.assistants.search(metadata=marker, name="a 5_%") == []
    picked = await client.assistants.search(metadata=marker, graph_id="factory", select=["name"])
    assert [dict(p) for p in picked] == [{"name": "beta"}]
    page = await client.assistants.search(metadata=marker, limit=1, response_format="object")
    assert (len(page["assistants"]), page["next"]) == (1, "1")
    assert await client.assistants.count(metadata=marker) == 2
    assert await client.assistants.count(metadata=marker, graph_id="configured") == 1
    assert await client.assistants.count(metadata=marker, name="BET") == 1
    assert await client.assistants.count(graph_id="configured") >= 2


async def test_graph_drawing(client: LangGraphClient) -> None:
    flat = await client.assistants.get_graph("nested")
    ids = {n["id"] for n in flat["nodes"]}
    assert {"prepare", "inner", "finish"} <= ids
    assert "inner:first" not in ids
    for xray in (True, 1):
        deep = await client.assistants.get_graph("nested", xray=xray)
        assert {"inner:first", "inner:second"} <= {n["id"] for n in deep["nodes"]}
        assert {"source": "inner:first", "target": "inner:second"} in [
            {"source": e["source"], "target": e["target"]} for e in deep["edges"]
        ]
    system = str(uuid.uuid5(SYSTEM_NAMESPACE, "nested"))
    assert await client.assistants.get_graph(system) == flat
    with pytest.raises(NotFoundError):
        await client.assistants.get_graph(str(uuid.uuid4()))


async def test_schemas(client: LangGraphClient) -> None:
    made = await client.assistants.create("configured")
    schemas = await client.assistants.get_schemas(made["assistant_id"])
    assert schemas["graph_id"] == "configured"
    for key in ("input_schema", "output_schema", "state_schema"):
        schema = schemas[key]
        assert schema is not None and set(schema["properties"]) == {"question", "seen"}, key
    context = schemas["context_schema"]
    assert context is not None and set(context["properties"]) == {"tone", "model"}
    assert schemas["config_schema"] is not None
    # typing.TypedDict state cannot be rendered by pydantic on Python 3.11: null, no error
    nested = await client.assistants.get_schemas("nested")
    assert nested["graph_id"] == "nested"
    assert nested["state_schema"] is None and nested["input_schema"] is None


async def test_subgraphs(client: LangGraphClient) -> None:
    everything = await client.assistants.get_subgraphs("nested")
    assert set(everything) == {"inner"}
    assert set(everything["inner"]) >= {"input_schema", "state_schema", "config_schema"}
    assert set(await client.assistants.get_subgraphs("nested", recurse=True)) == {"inner"}
    assert set(await client.assistants.get_subgraphs("nested", namespace="inner")) == {"inner"}
    assert await client.assistants.get_subgraphs("nested", namespace="nowhere") == {}
    assert await client.assistants.get_subgraphs("configured") == {}


async def test_run_uses_the_assistants_current_version(client: LangGraphClient) -> None:
    made = await client.assistants.create(
        "configured", {"configurable": {"greeting": "hello"}}, context={"tone": "warm"}
    )
    aid = made["assistant_id"]
    thread = await client.threads.create()
    tid = thread["thread_id"]
    seen = as_dict(await client.runs.wait(tid, aid, input={"question": "q"}))["seen"]
    assert (seen["greeting"], seen["tone"], seen["model"]) == ("hello", "warm", "none")
    assert (seen["assistant_id"], seen["graph_id"], seen["thread_id"]) == (aid, "configured", tid)
    assert seen["run_id"]
    # the run's own context goes over the assistant's
    seen = as_dict(await client.runs.wait(None, aid, input={}, context={"model": "m"}))["seen"]
    assert (seen["tone"], seen["model"], seen["greeting"]) == ("warm", "m", "hello")
    # and so does its config
    own: Config = {"configurable": {"greeting": "mine"}}
    seen = as_dict(await client.runs.wait(None, aid, input={}, config=own))["seen"]
    assert (seen["greeting"], seen["tone"]) == ("mine", "warm")
    await client.assistants.update(aid, context={"tone": "cold"})
    seen = as_dict(await client.runs.wait(None, aid, input={}))["seen"]
    assert seen["tone"] == "cold"
    await client.assistants.set_latest(aid, 1)
    seen = as_dict(await client.runs.wait(None, aid, input={}))["seen"]
    assert seen["tone"] == "warm"


async def test_factory_taking_config_and_runtime(client: LangGraphClient) -> None:
    config: Config = {"configurable": {"greeting": "hi"}}
    seen = as_dict(await client.runs.wait(None, "factory", input={}, config=config))["seen"]
    assert seen == {
        "access_context": "threads.create_run",
        "context": {},
        "user": None,
        "store": True,
        "greeting": "hi",
    }
    made = await client.assistants.create("factory", context={"tone": "t"})
    seen = as_dict(await client.runs.wait(None, made["assistant_id"], input={}))["seen"]
    assert (seen["access_context"], seen["context"]) == ("threads.create_run", {"tone": "t"})
    schemas = await client.assistants.get_schemas(made["assistant_id"])
    assert schemas["graph_id"] == "factory" and schemas["state_schema"] is not None
    drawn = await client.assistants.get_graph("factory")
    assert "called" in {n["id"] for n in drawn["nodes"]}
