"""One error base for everything below the endpoints; each API surface renders it its own way."""

from __future__ import annotations

from typing import Any


class AisouleError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.field = field
        self.headers = headers or {}
        self.details = details


class ValidationFailed(AisouleError):
    status_code = 422
    code = "validation_error"


class Unauthorized(AisouleError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AisouleError):
    status_code = 403
    code = "forbidden"


class NotFound(AisouleError):
    status_code = 404
    code = "not_found"


class Conflict(AisouleError):
    status_code = 409
    code = "conflict"


class RateLimited(AisouleError):
    status_code = 429
    code = "rate_limited"


class Unavailable(AisouleError):
    status_code = 503
    code = "unavailable"


class UpstreamFailed(AisouleError):
    """Meta (or the emulator) could not be reached or answered with an error we pass on."""

    status_code = 502
    code = "whatsapp_unreachable"
