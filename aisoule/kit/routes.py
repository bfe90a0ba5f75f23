"""Which methods a URL answers to, for the ``Allow`` header of a 405.

Starlette answers a 405 from the first route whose path matched, and FastAPI makes one route per
operation, so ``GET /api/contacts`` and ``POST /api/contacts`` are two routes and the header named
one method only. The methods of every route matching the path are the ones the URL serves.
"""

from __future__ import annotations

from typing import Any

import fastapi.routing
from starlette.routing import Match
from starlette.types import Scope


def allowed_methods(routes: Any, scope: Scope) -> list[str]:
    """The methods of every route whose path matches this request's path, sorted."""
    probe: Scope = {
        "type": "http",
        "path": scope["path"],
        "root_path": scope.get("root_path", ""),
        "method": "",  # matches no route fully: every route with this path answers PARTIAL
    }
    # The routes as FastAPI matches them (recent versions keep included routers lazily).
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    allowed: set[str] = set()
    for route in routes if iter_contexts is None else iter_contexts(routes):
        methods = getattr(route, "methods", None)
        if methods and route.matches(probe)[0] != Match.NONE:
            allowed |= set(methods)
    return sorted(allowed)
