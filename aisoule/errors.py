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
from aisoule.kit.validation import printable

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


_PARAMETERS = ("query", "path", "header", "cookie")
# The JSON type each pydantic type error asks for, to merge a union's members into one message.
_WANTS = {
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "none_required": "null",
}


def _field(err: dict[str, Any], body: Any) -> tuple[str | None, bool]:
    """The field as the client wrote it, and whether a union member's tag was dropped at its end.

    pydantic's ``loc`` also holds what the client never wrote: union members (``TextPayload``,
    ``str``, ``function-after[...]``), ``[key]`` for a dict's keys. Walking the loc through the
    body keeps only the keys and indexes the body has, plus a missing field's own name."""
    loc = tuple(err.get("loc", ()))
    if not loc:
        return None, False
    if loc[0] in _PARAMETERS:
        return ".".join(printable(str(p)) for p in loc[1:]) or None, False
    if loc[0] == "body":
        loc = loc[1:]
    if err.get("type") == "unsafe_input":  # the guard's own loc is the client's JSON path
        return ".".join(str(p) for p in loc) or None, False
    parts: list[str] = []
    node = body
    tagged = False
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif i == len(loc) - 1 and err.get("type") == "missing":
            node = None
        else:
            tagged = True  # not in the body: a tag pydantic added
            continue
        tagged = False
        parts.append(printable(str(part)))
    return ".".join(parts) or None, tagged


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "missing":
        return "is required"
    if kind in _WANTS and kind not in ("int_parsing", "float_parsing", "bool_parsing"):
        return f"must be {_WANTS[kind]}"  # pydantic's own names a class (TextPayload) or a type
    msg = str(err.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return printable(msg)


def _details(errors: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
    """One detail per problem. Where a union's members each refused a value for its type (a
    ``text`` that is neither an object nor a string), one detail says what it may be; where one
    member got further (the object had a bad ``body``), the others' type errors are dropped."""
    named = [(err, *_field(err, body)) for err in errors]
    mismatches: dict[str | None, list[str]] = {}
    deeper: set[str | None] = set()
    for err, field, tagged in named:
        if tagged and err.get("type") in _WANTS:
            mismatches.setdefault(field, []).append(_WANTS[str(err.get("type"))])
    for _, field, tagged in named:
        if not tagged and field is not None:
            for site in mismatches:
                if site is None or field.startswith(f"{site}."):
                    deeper.add(site)
    details: list[dict[str, Any]] = []
    for err, field, tagged in named:
        if tagged and field in mismatches:
            if field in deeper:
                continue
            wants = list(dict.fromkeys(mismatches.pop(field)))
            detail = {"field": field, "message": f"must be {' or '.join(wants)}"}
        elif tagged and err.get("type") in _WANTS:
            continue  # merged above
        else:
            detail = {"field": field, "message": _message(err)}
        if detail not in details:
            details.append(detail)
    return details


async def _validation(request: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            request.url.path, 400, "Malformed JSON in request body", code="invalid_json"
        )
    if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") == "missing" for e in errors):
        details = [{"field": None, "message": "A JSON request body is required"}]
    else:
        details = _details(errors, exc.body)
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
