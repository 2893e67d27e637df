"""/console in headless chromium against a real broker (both topologies): queue and
workers from /metrics, runs by status with live updates, a thread's checkpoint timeline,
a live tail of a running run, and custom auth through the headers typed into it."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import Servers, Site

REPLY = "ai: The tool says: It's always sunny in sf."


def _thread(api: str, headers: dict[str, str] | None = None) -> str:
    thread_id: str = httpx.post(f"{api}/threads", json={}, headers=headers).json()["thread_id"]
    return thread_id


def _start(
    api: str,
    thread_id: str,
    graph: str,
    input_: Any,
    resumable: bool = False,
    headers: dict[str, str] | None = None,
) -> str:
    body = {"assistant_id": graph, "input": input_, "stream_resumable": resumable}
    response = httpx.post(f"{api}/threads/{thread_id}/runs", json=body, headers=headers)
    assert response.status_code == 200, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def test_overview_shows_queue_workers_and_live_runs(page: Page, site: Site) -> None:
    thread_id = _thread(site.api)
    run_id = _start(site.api, thread_id, "slow", {"steps": 15, "delay": 0.1})
    page.goto(f"{site.api}/console")
    expect(page.get_by_test_id("workers-alive")).to_contain_text("1")
    expect(page.get_by_test_id("queue-depth")).to_be_visible()
    expect(page.get_by_test_id("oldest-pending")).to_contain_text(" s")
    expect(page.get_by_test_id("workers").locator("tbody tr")).to_have_count(1)
    row = page.locator(f"tr[data-run='{run_id}']")
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("slow")
    expect(row).to_contain_text("success")  # a live update, no reload
    page.get_by_label("status").select_option("error")
    expect(row).to_have_count(0)
    page.get_by_label("status").select_option("success")
    expect(row).to_contain_text("success")


def test_thread_timeline_shows_each_steps_node_and_values(page: Page, site: Site) -> None:
    thread_id = _thread(site.api)
    body = {
        "assistant_id": "agent",
        "input": {"messages": [{"type": "human", "content": "weather in sf"}]},
    }
    httpx.post(f"{site.api}/threads/{thread_id}/runs/wait", json=body, timeout=30)
    page.goto(f"{site.api}/console/#/thread/{thread_id}")
    steps = page.get_by_test_id("step")
    expect(steps).to_have_count(5)  # input, __start__, agent, tools, agent
    expect(steps.locator(".node")).to_have_text(["input", "__start__", "agent", "tools", "agent"])
    expect(steps.nth(2)).to_contain_text('ai: get_weather({"city":"sf"})')
    expect(steps.nth(3)).to_contain_text("tool: It's always sunny in sf.")
    last = steps.nth(4)
    expect(last).to_contain_text("messages appended")
    expect(last).to_contain_text(REPLY)
    last.get_by_text("values").click()  # the whole state at that step
    expect(last.locator("details pre")).to_contain_text("human: weather in sf")
    expect(page.get_by_test_id("thread-runs")).to_contain_text("success")


def test_tail_follows_a_running_runs_events(page: Page, site: Site) -> None:
    thread_id = _thread(site.api)
    run_id = _start(site.api, thread_id, "slow", {"steps": 20, "delay": 0.1})
    page.goto(f"{site.api}/console/#/run/{thread_id}/{run_id}")
    expect(page.get_by_test_id("tail-state")).to_have_text("following…")
    events = page.get_by_test_id("events").locator("li[data-event=values]")
    # The first values event may be the run's input (the tail can join before the first
    # step), so wait for a step's values, wherever they are in the list.
    expect(events.filter(has_text='"done"').first).to_be_visible()
    expect(page.get_by_test_id("tail-state")).to_have_text("the run's stream ended")
    assert events.count() >= 2  # it followed the run, tick by tick
    expect(events.last).to_contain_text('"done": 20'.replace(" ", ""))
    expect(page.locator("main")).to_contain_text("success")


def test_tail_replays_a_resumable_run_from_its_start(page: Page, site: Site) -> None:
    thread_id = _thread(site.api)
    run_id = _start(site.api, thread_id, "slow", {"steps": 3, "delay": 0}, resumable=True)
    httpx.get(f"{site.api}/threads/{thread_id}/runs/{run_id}/join", timeout=30)
    page.goto(f"{site.api}/console/#/run/{thread_id}/{run_id}")
    expect(page.get_by_test_id("tail-state")).to_have_text("the run's stream ended")
    events = page.get_by_test_id("events").locator("li")
    expect(events.first).to_have_attribute("data-event", "metadata")
    expect(events.locator("xpath=self::*[@data-event='values']")).to_have_count(4)
    expect(events.last).to_contain_text('"done":3')


def test_console_authenticates_with_the_headers_typed_in(page: Page, servers: Servers) -> None:
    auth_dev = servers.auth
    alice = {"Authorization": f"Bearer user-alice-{uuid4().hex[:6]}"}
    bob = {"Authorization": f"Bearer user-bob-{uuid4().hex[:6]}"}
    mine = _start(
        auth_dev, _thread(auth_dev, alice), "slow", {"steps": 1, "delay": 0}, headers=alice
    )
    theirs = _start(auth_dev, _thread(auth_dev, bob), "slow", {"steps": 1, "delay": 0}, headers=bob)
    page.goto(f"{auth_dev}/console")  # the page itself needs no token
    expect(page.locator("#error")).to_contain_text("401 Invalid token")
    page.get_by_text("Headers").click()
    page.locator("#headers").fill(f'{{"Authorization": "{alice["Authorization"]}"}}')
    page.get_by_role("button", name="Save").click()
    expect(page.locator(f"tr[data-run='{mine}']")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator(f"tr[data-run='{theirs}']")).to_have_count(0)  # alice sees hers only
