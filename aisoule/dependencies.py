"""Process state for request code, as a typed dependency: ``rt: RuntimeDep``.

The server's lifespan builds the one ``Runtime`` and keeps it on ``app.state.runtime``; endpoints
and request dependencies take it from there (``get_runtime(request)`` where the request is
already at hand); see ``aisoule.runtime`` for the rule. It lives
apart from ``runtime`` so that services, which import ``Runtime``, never import FastAPI.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aisoule.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def _runtime(request: Request) -> Runtime:
    # A coroutine, so that FastAPI calls it on the event loop: a plain ``def`` dependency runs in
    # the thread pool, a hop that made POST /api/messages/send 6% dearer (docs/benchmarks.md).
    return get_runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
