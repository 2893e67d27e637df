"""Request-scoped access to the process's runtime."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from broker.runtime import Runtime


async def _runtime(request: Request) -> Runtime:
    # async: a plain def dependency would send every request through the threadpool
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
