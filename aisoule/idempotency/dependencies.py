from __future__ import annotations

from fastapi import Depends, Request

from aisoule.auth.dependencies import authenticate, authenticates
from aisoule.db.session import DBSession
from aisoule.idempotency import service


@authenticates
async def idempotency_guard(request: Request, session: DBSession) -> None:
    """On a POST with an Idempotency-Key: reserve it, replay its stored answer, or refuse."""
    principal = await authenticate(request, session)
    if request.method != "POST":
        return
    raw = request.headers.get(service.HEADER)
    if raw is None:
        return
    key = service.validate_key(raw)
    settings = request.app.state.settings
    body = await request.body()
    request.state.idempotency = await service.reserve(
        session,
        principal.workspace_id,
        key,
        service.fingerprint(request.method, request.url.path, body),
        ttl_hours=settings.idempotency_ttl_hours,
        lease_seconds=settings.idempotency_lease_seconds,
        body_key=request.app.state.idempotency_key,
    )


# On every POST of both surfaces, except sign-up, login and logout; declared on each POST route
# rather than on the routers: FastAPI solves a router's dependencies for every method, and on
# GET this one cost 4% of a list request for nothing (tests/idempotency check every operation).
IDEMPOTENT = [Depends(idempotency_guard)]
