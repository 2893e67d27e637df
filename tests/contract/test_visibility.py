"""Auth filters (`broker/storage/visibility.py`) mean the same on both backends: each
filter form against metadata that matches and that does not, in a search, a count and
a read by id."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.errors import NotFound
from broker.storage.threads import ThreadStore
from broker.storage.visibility import InvalidFilter, containment, contains

CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"owner": "a"}, {"owner": "a", "x": 1}, True),
    ({"owner": "a"}, {"owner": "b"}, False),
    ({"owner": "a"}, {}, False),
    ({"owner": "a"}, {"owner": ["a"]}, False),
    ({"owner": {"$eq": "a"}}, {"owner": "a"}, True),
    ({"owner": {"$eq": "a"}}, {"owner": "ab"}, False),
    ({"team": {"$contains": "a"}}, {"team": ["b", "a"]}, True),
    ({"team": {"$contains": "a"}}, {"team": ["b"]}, False),
    ({"team": {"$contains": "a"}}, {"team": "a"}, False),
    ({"team": {"$contains": ["a", "c"]}}, {"team": ["c", "b", "a"]}, True),
    ({"team": {"$contains": ["a", "c"]}}, {"team": ["a", "b"]}, False),
    ({"owner": "a", "team": {"$contains": "t"}}, {"owner": "a", "team": ["t"]}, True),
    ({"owner": "a", "team": {"$contains": "t"}}, {"owner": "a", "team": ["u"]}, False),
    ({"n": 1}, {"n": 1.0}, True),
]


@pytest.fixture
def threads(either_engine: AsyncEngine) -> ThreadStore:
    return ThreadStore(either_engine)


@pytest.mark.parametrize(("filter", "metadata", "visible"), CASES)
async def test_a_filter_matches_the_same_on_both_backends(
    threads: ThreadStore, filter: dict[str, Any], metadata: dict[str, Any], visible: bool
) -> None:
    assert contains(metadata, containment(filter)) is visible
    mark = {"case": uuid.uuid4().hex}
    thread, _ = await threads.create(uuid.uuid4(), {**metadata, **mark})
    scoped = {**filter, **mark}
    found, total = await threads.search(filter=scoped)
    assert ([t.thread_id for t in found], total) == ([thread.thread_id] * visible, int(visible))
    assert await threads.count(filter=scoped) == int(visible)
    if visible:
        assert (await threads.get(thread.thread_id, filter=scoped)).thread_id == thread.thread_id
    else:
        with pytest.raises(NotFound):
            await threads.get(thread.thread_id, filter=scoped)


def test_an_unknown_operator_is_refused() -> None:
    with pytest.raises(InvalidFilter):
        containment({"owner": {"$ne": "a"}})
