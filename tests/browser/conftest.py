"""A real broker serving the example graphs (examples/langgraph.json), the chat page
served from another origin, and one headless chromium for the whole session.

Every test that asks for `site` runs against both topologies: `broker api` +
`broker worker` on Postgres and Redis (a database and Redis prefix of their own, so the
e2e servers' workers, which know other graphs, never claim these runs) and `broker dev`
on SQLite.
"""

from __future__ import annotations

import functools
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser import setup
from tests.conftest import fresh_database
from tests.processes import broker_processes, start_dev
from tests.services import Services

EXAMPLES = setup.ROOT / "examples" / "langgraph.json"
# Waits poll the DOM and return as soon as it matches: a generous ceiling costs nothing
# when all is well and keeps a loaded CI machine from failing a slow first paint.
expect.set_options(timeout=15_000)
AUTH = setup.ROOT / "tests" / "graphs" / "auth.json"
SCREENSHOTS = Path(__file__).parent / "screenshots"


@dataclass(frozen=True)
class Site:
    api: str  # the broker's URL
    chat: str  # the chat page's URL (another origin: CORS is exercised)
    backend: str  # "production" or "dev"


def _say(pytestconfig: pytest.Config, line: str) -> None:
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line, file=sys.stderr, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(line, file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def browser(pytestconfig: pytest.Config, servers: Servers) -> Iterator[Browser]:
    """One headless chromium per test module. Playwright's sync API runs an event loop
    in this thread while it is open, so the servers (whose set-up uses asyncio.run) are
    started before it, and it is closed before the next module's async tests."""
    try:
        executable = setup.chromium(functools.partial(_say, pytestconfig))
    except setup.SetupFailed as error:
        pytest.fail(str(error), pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page (its own storage); its screenshot is saved when the test ends."""
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{_file_name(request.node.name)}.png"))
    context.close()


def _file_name(test_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in test_name).strip("_")


@pytest.fixture(scope="session")
def chat_dist(pytestconfig: pytest.Config) -> Path:
    try:
        return setup.chat_page(functools.partial(_say, pytestconfig))
    except setup.SetupFailed as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def chat_origin(chat_dist: Path) -> Iterator[str]:
    """The built chat page, served by a static file server on its own port."""
    handler = functools.partial(_Quiet, directory=str(chat_dist))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _env(broker_env: dict[str, str]) -> dict[str, str]:
    return {**broker_env, "BROKER_SSE_HEARTBEAT_SECONDS": "0.5", "BROKER_SHUTDOWN_GRACE": "2"}


@dataclass(frozen=True)
class Servers:
    production: str  # broker api + broker worker, examples/langgraph.json
    dev: str  # broker dev, examples/langgraph.json
    auth: str  # broker dev with tests/graphs/auth.json's custom auth (bearer `user-<name>`)


@pytest.fixture(scope="session")
def servers(
    services: Services, broker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """The three servers, started side by side (each waits for its own /ok)."""
    env = _env(broker_env)

    def production(stack: ExitStack) -> str:
        database = stack.enter_context(contextmanager(fresh_database)(services))
        own = {**env, "DATABASE_URI": database, "BROKER_REDIS_PREFIX": _prefix()}
        logs = tmp_path_factory.mktemp("browser-production")
        urls = stack.enter_context(broker_processes(own, logs, config=EXAMPLES))
        return urls[0]

    def dev(config: Path) -> Callable[[ExitStack], str]:
        def start(stack: ExitStack) -> str:
            logs = tmp_path_factory.mktemp("browser-dev")
            process, url = start_dev(env, logs, logs / "dev.sqlite3", config=config)
            stack.callback(process.stop)
            return url

        return start

    with ExitStack() as stack, ThreadPoolExecutor(3) as pool:
        starts = [production, dev(EXAMPLES), dev(AUTH)]
        stacks = [stack.enter_context(ExitStack()) for _ in starts]
        futures = [pool.submit(start, own) for start, own in zip(starts, stacks, strict=True)]
        urls = [future.result() for future in futures]
        yield Servers(*urls)


def _prefix() -> str:
    return f"broker-browser-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session", params=["production", "dev"])
def site(request: pytest.FixtureRequest, chat_origin: str) -> Site:
    servers: Servers = request.getfixturevalue("servers")
    api = servers.production if request.param == "production" else servers.dev
    return Site(api=api, chat=chat_origin, backend=request.param)


def chat_url(site: Site, assistant: str = "agent", thread: str | None = None) -> str:
    url = f"{site.chat}/index.html?api={site.api}&assistant={assistant}"
    return url + (f"&thread={thread}" if thread else "")
