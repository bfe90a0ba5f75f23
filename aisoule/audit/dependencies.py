from __future__ import annotations

from fastapi import Request

from aisoule.audit.service import Origin


def request_origin(request: Request) -> Origin:
    """Where a request came from, as the audit log records it."""
    return Origin(
        request.client.host if request.client else None, request.headers.get("user-agent")
    )
