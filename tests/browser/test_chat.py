"""examples/chat (React + `useStream`) in headless chromium against a real broker.

The page is served from its own origin, so every request is a cross-origin one (CORS
preflights included). Waits poll the DOM (Playwright's expect) rather than sleep.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, chat_url

WEATHER = "The tool says: It's always sunny in sf."
# approval.py types a word every 0.1 s: this reply takes about 2 s to stream.
LONG = " ".join(f"word{i}" for i in range(20))


def _send(page: Page, text: str) -> None:
    page.get_by_label("message").fill(text)
    page.get_by_role("button", name="Send").click()


def _ai(page: Page) -> Any:
    return page.get_by_test_id("message-ai").last


def _watch_ai_texts(page: Page) -> None:
    """Record every text the AI message shows, to see it grow token by token."""
    page.evaluate(
        """() => {
            window.seen = [];
            new MutationObserver(() => {
                const ai = [...document.querySelectorAll('[data-testid=message-ai]')].pop();
                if (ai && window.seen.at(-1) !== ai.textContent) window.seen.push(ai.textContent);
            }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )


def _thread_id(page: Page) -> str:
    match = re.search(r"thread=([0-9a-f-]+)", page.url)
    assert match, page.url
    return match.group(1)


def _runs(site: Site, thread_id: str) -> list[dict[str, object]]:
    runs: list[dict[str, object]] = httpx.get(f"{site.api}/threads/{thread_id}/runs").json()
    return runs


def test_agent_answers_through_its_tool(page: Page, site: Site) -> None:
    page.goto(chat_url(site))
    _send(page, "what is the weather in sf")
    expect(_ai(page)).to_have_text(WEATHER)
    expect(page.get_by_test_id("message-human")).to_have_text(["what is the weather in sf"])
    [run] = _runs(site, _thread_id(page))
    assert run["status"] == "success"


def test_reply_streams_token_by_token(page: Page, site: Site) -> None:
    page.goto(chat_url(site, "approval"))
    _watch_ai_texts(page)
    _send(page, LONG)
    expect(_ai(page)).to_have_text(f"You said: {LONG}")
    seen: list[str] = page.evaluate("window.seen")
    partial = [text for text in seen if text != f"You said: {LONG}"]
    assert len(partial) >= 5, seen  # it grew in the page, not all at once
    assert all(f"You said: {LONG}".startswith(text) for text in partial), seen


def test_reload_mid_run_rejoins_the_run(page: Page, site: Site) -> None:
    page.goto(chat_url(site, "approval"))
    _send(page, LONG)
    expect(_ai(page)).to_contain_text("word3")
    page.reload()  # the run goes on on the server; the page joins it again
    _watch_ai_texts(page)
    expect(_ai(page)).to_have_text(f"You said: {LONG}")
    seen: list[str] = page.evaluate("window.seen")
    assert len(seen) >= 2, seen  # still streaming after the reload, not a final load
    [run] = _runs(site, _thread_id(page))
    assert run["status"] == "success"


def test_interrupt_prompts_and_resumes(page: Page, site: Site) -> None:
    page.goto(chat_url(site, "approval"))
    _send(page, "please approve this")
    prompt = page.get_by_test_id("interrupt")
    expect(prompt).to_contain_text("Answer 'please approve this'?")
    prompt.get_by_role("button", name="yes").click()
    expect(_ai(page)).to_have_text("You said: please approve this")
    expect(prompt).to_have_count(0)
    runs = _runs(site, _thread_id(page))
    assert [r["status"] for r in runs] == ["success", "success"]


def test_stop_cancels_the_run(page: Page, site: Site) -> None:
    page.goto(chat_url(site, "approval"))
    _send(page, LONG)
    expect(_ai(page)).to_contain_text("word2")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    thread_id = _thread_id(page)
    for _ in range(100):
        [run] = _runs(site, thread_id)
        if run["status"] not in ("pending", "running"):
            break
        page.wait_for_timeout(50)
    assert run["status"] == "interrupted"
    # The node never finished: the thread keeps the question, not the half reply.
    expect(page.get_by_test_id("message-human")).to_have_text([LONG])
    expect(page.get_by_test_id("message-ai")).to_have_count(0)
