"""http.configurable_headers: which request headers reach a run's config["configurable"].

LangGraph's default: every `x-*` header and `user-agent`, never `x-api-key`,
`x-tenant-id` or `x-service-key`. `includes` replaces the default set; `excludes` win
over `includes`, and the three secrets stay out whatever is configured (a run's config
is stored). Patterns are header names where `*` matches any run of characters.

The runs router's dependency (`capture`) selects them for the request; the run body's
`to_request` reads them (`carried`), in the same request context.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from broker.config import HeaderPatterns

DEFAULT_INCLUDES = ("x-*", "user-agent")
ALWAYS_EXCLUDED = ("x-api-key", "x-tenant-id", "x-service-key")

_carried: ContextVar[dict[str, str] | None] = ContextVar("configurable_headers", default=None)


def _pattern(names: Iterable[str]) -> re.Pattern[str]:
    alternatives = (re.escape(n.lower()).replace(r"\*", ".*") for n in names)
    return re.compile("|".join(f"(?:{a})" for a in alternatives) or "(?!)")


class HeaderSelector:
    def __init__(self, patterns: HeaderPatterns | None) -> None:
        includes = patterns.includes if patterns and patterns.includes is not None else None
        excludes = (patterns.excludes or []) if patterns else []
        self._includes = _pattern(DEFAULT_INCLUDES if includes is None else includes)
        self._excludes = _pattern([*excludes, *ALWAYS_EXCLUDED])

    def select(self, headers: Headers) -> dict[str, str]:
        return {
            name: value
            for name, value in headers.items()  # Starlette's names are lower case
            if self._includes.fullmatch(name) and not self._excludes.fullmatch(name)
        }


def capture(patterns: HeaderPatterns | None) -> Callable[[HTTPConnection], Awaitable[None]]:
    """A router dependency that selects the request's configurable headers."""
    selector = HeaderSelector(patterns)

    async def dependency(
        request: HTTPConnection,
    ) -> None:  # async: it runs in the request's context
        _carried.set(selector.select(request.headers))

    return dependency


def carried() -> dict[str, str]:
    """The configurable headers of the request being handled ({} outside one)."""
    return dict(_carried.get() or {})
