"""The assistant cache across processes: two production runtimes (each its own Redis
connections and pub/sub subscriber, as two API processes have) on one database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broker.assistant_cache import AssistantCache
from broker.errors import NotFound
from broker.events import LocalEventBus
from broker.graphs import GraphRegistry, load_config
from broker.models import Assistant
from broker.runtime import Runtime, open_runtime
from broker.settings import Settings
from broker.storage.assistants import AssistantSpec, AssistantStore, system_assistant_id
from broker.storage.visibility import Filter

GRAPHS = Path(__file__).parents[1] / "graphs" / "langgraph.json"


@pytest.fixture(scope="module")
def graphs() -> GraphRegistry:
    return load_config(GRAPHS)


@pytest.fixture
async def pair(settings: Settings, graphs: GraphRegistry) -> AsyncIterator[tuple[Runtime, Runtime]]:
    own = settings.model_copy(update={"redis_prefix": f"cache-{uuid.uuid4().hex[:8]}"})
    first = await open_runtime(own, graphs)
    second = await open_runtime(own, graphs)
    yield first, second
    await first.close()
    await second.close()


def _spec(name: str) -> AssistantSpec:
    return AssistantSpec("agent", {"configurable": {"n": 1}}, {}, {"owner": "a"}, name, None)


async def _eventually(read: Callable[[], Awaitable[Assistant]], name: str) -> Assistant:
    """Invalidation is a PUBLISH: the other process hears it a moment later."""
    for _ in range(200):
        assistant = await read()
        if assistant.name == name:
            return assistant
        await asyncio.sleep(0.01)
    raise AssertionError(f"still {assistant.name!r}, not {name!r}")


async def test_a_change_in_one_process_evicts_the_other(pair: tuple[Runtime, Runtime]) -> None:
    a, b = (r.service for r in pair)
    created = await a.create_assistant(None, _spec("v1"))
    aid = str(created.assistant_id)
    assert (await b.resolve_assistant(aid)).name == "v1"  # cached in b now
    await a.patch_assistant(aid, {"name": "v2"}, None)
    assert (await a.resolve_assistant(aid)).name == "v2"  # the writer evicts its own
    assert (await _eventually(lambda: b.resolve_assistant(aid), "v2")).version == 2
    await a.set_latest_assistant(aid, 1)
    assert (await _eventually(lambda: b.resolve_assistant(aid), "v1")).version == 1
    await a.delete_assistant(aid)
    for _ in range(200):
        try:
            await b.resolve_assistant(aid)
        except NotFound:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the deleted assistant is still served")


async def test_the_cache_serves_without_a_read(
    pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = pair[0].service
    store = service.assistants
    reads: list[uuid.UUID] = []
    read = store.get

    async def counted(assistant_id: uuid.UUID, filter: Filter | None = None) -> Assistant:
        reads.append(assistant_id)
        return await read(assistant_id, filter)

    monkeypatch.setattr(store, "get", counted)
    first = await service.resolve_assistant("agent")
    assert await service.resolve_assistant("agent") is first
    assert reads == [system_assistant_id("agent")]


async def test_a_filtered_read_goes_to_the_store(pair: tuple[Runtime, Runtime]) -> None:
    """An auth filter is the store's to enforce, even for an assistant held in memory."""
    service = pair[0].service
    created = await service.create_assistant(None, _spec("mine"))
    aid = str(created.assistant_id)
    await service.resolve_assistant(aid)  # cached
    seen: Filter = {"owner": "a"}
    hidden: Filter = {"owner": "b"}
    assert (await service.resolve_assistant(aid, seen)).name == "mine"
    with pytest.raises(NotFound):
        await service.resolve_assistant(aid, hidden)


async def test_a_read_racing_an_eviction_is_not_kept(pair: tuple[Runtime, Runtime]) -> None:
    """A read that began before a change committed may return the old row: if any
    eviction arrived meanwhile, it is answered but not kept."""
    runtime = pair[0]
    store = runtime.service.assistants
    created = await store.create(uuid.uuid4(), _spec("old"))
    gate = asyncio.Event()

    class Slow(AssistantStore):
        async def get(self, assistant_id: uuid.UUID, filter: Filter | None = None) -> Assistant:
            found = await super().get(assistant_id, filter)
            await gate.wait()
            return found

    bus = LocalEventBus()
    cache = AssistantCache(Slow(runtime.engine), bus, "assistants", seconds=60)
    await cache.start()
    reading = asyncio.create_task(cache.get(created.assistant_id))
    await asyncio.sleep(0.05)
    await store.patch(created.assistant_id, {"name": "new"}, None)
    await bus.publish("assistants", str(created.assistant_id).encode())
    await asyncio.sleep(0)
    gate.set()
    assert (await reading).name == "old"
    assert (await cache.get(created.assistant_id)).name == "new"
    await cache.close()


async def test_entries_expire(pair: tuple[Runtime, Runtime]) -> None:
    """Expiry bounds a lost invalidation (a write made while Redis was unreachable)."""
    runtime = pair[0]
    store = runtime.service.assistants
    created = await store.create(uuid.uuid4(), _spec("old"))
    now = [0.0]
    cache = AssistantCache(store, LocalEventBus(), "assistants", seconds=5, clock=lambda: now[0])
    await cache.start()
    assert (await cache.get(created.assistant_id)).name == "old"
    await store.patch(created.assistant_id, {"name": "new"}, None)  # nobody told
    assert (await cache.get(created.assistant_id)).name == "old"
    now[0] = 5.0
    assert (await cache.get(created.assistant_id)).name == "new"
    await cache.close()
    now[0] = 100.0
    await store.patch(created.assistant_id, {"name": "newer"}, None)
    assert (await cache.get(created.assistant_id)).name == "newer"  # closed: always read


async def test_zero_seconds_never_keeps(pair: tuple[Runtime, Runtime]) -> None:
    runtime = pair[0]
    store = runtime.service.assistants
    created = await store.create(uuid.uuid4(), _spec("old"))
    cache = AssistantCache(store, LocalEventBus(), "assistants", seconds=0)
    await cache.start()
    assert not cache.active
    await cache.get(created.assistant_id)
    await store.patch(created.assistant_id, {"name": "new"}, None)
    assert (await cache.get(created.assistant_id)).name == "new"
    await cache.close()
