"""Rendering errors in each surface's shape. Nothing below the endpoints knows about HTTP bodies."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from aisoule.exceptions import AisouleError
from aisoule.idempotency.service import IdempotentReplay
from aisoule.kit.responses import ORJSONResponse
from aisoule.kit.routes import allowed_methods

log = structlog.get_logger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def is_v1(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def error_body(
    path: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    code = code or _STATUS_CODES.get(status, "error")
    if details is None and field is not None:
        bare = message[len(field) + 2 :] if message.startswith(f"{field}: ") else message
        details = [{"field": field, "message": bare}]
    if is_v1(path):
        error: dict[str, Any] = {"code": code, "message": message}
        if field is not None:
            error["field"] = field
        if details:
            error["details"] = details
        return {"success": False, "error": error}
    body: dict[str, Any] = {"message": message, "status": "error", "code": code}
    if details:
        body["errors"] = details
    return body


def error_response(
    path: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> ORJSONResponse:
    return ORJSONResponse(
        error_body(path, status, message, code=code, field=field, details=details),
        status_code=status,
        headers=headers,
    )


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = (
        [str(p) for p in loc[1:]]
        if loc and loc[0] in ("body", "query", "path", "header")
        else [str(p) for p in loc]
    )
    return ".".join(parts) or None


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "missing":
        return "is required"
    msg = str(err.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


async def _validation(request: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            request.url.path, 400, "Malformed JSON in request body", code="invalid_json"
        )
    details: list[dict[str, Any]] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        field = _field(loc)
        if loc == ("body",) and err.get("type") == "missing":
            details.append({"field": None, "message": "A JSON request body is required"})
            continue
        details.append({"field": field, "message": _message(err)})
    first = details[0] if details else {"field": None, "message": "Invalid request"}
    first_field = first["field"]
    message = f"{first_field}: {first['message']}" if first_field else str(first["message"])
    return error_response(
        request.url.path,
        422,
        message,
        code="validation_error",
        field=first_field,
        details=details,
    )


async def _aisoule(request: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, AisouleError)
    return error_response(
        request.url.path,
        exc.status_code,
        exc.message,
        code=exc.code,
        field=exc.field,
        details=exc.details,
        headers=exc.headers,
    )


async def _replay(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    return Response(
        content=exc.body,
        status_code=exc.response_status,
        media_type=exc.content_type,
        headers={"Idempotent-Replayed": "true"},
    )


async def _http(request: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message: str = exc.detail if isinstance(exc.detail, str) else "Error"
    if exc.status_code == 404 and message == "Not Found":
        message = f"No such endpoint: {request.method} {request.url.path}"
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        # Starlette's Allow names the first matching route's methods; the path may have more.
        allowed = allowed_methods(request.app.routes, request.scope)
        if allowed:
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            if message == "Method Not Allowed":
                use = ", ".join(allowed)
                message = f"{request.method} is not allowed on {request.url.path} (allowed: {use})"
    return error_response(request.url.path, exc.status_code, message, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> ORJSONResponse:
    log.error("unhandled_error", path=request.url.path, method=request.method, exc_info=exc)
    return error_response(request.url.path, 500, "Internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(IdempotentReplay, _replay)
    app.add_exception_handler(AisouleError, _aisoule)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
