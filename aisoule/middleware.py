"""ASGI middleware: request guard (body size, JSON), and the response edge (request id,
rate-limit and security headers, API key usage, storing idempotent responses)."""

from __future__ import annotations

import os
import re
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aisoule.errors import error_response
from aisoule.idempotency import service as idempotency

log = structlog.get_logger(__name__)

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WEBHOOK_PREFIX = "/webhooks/"
# The embedded emulator is Meta's API, not ours: it takes multipart media uploads and answers
# every error in Meta's shape itself.
EMULATOR_PREFIX = "/emulator/"
API_PREFIXES = ("/api/", "/v1/")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
# HTML pages may set a CSP of their own (the API docs pages do: aisoule/apidocs.py).
HTML_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


# Added to every response (unless the response set them itself).
_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_HTML_ONLY = [(b"content-security-policy", HTML_CSP.encode()), (b"x-frame-options", b"DENY")]


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def _is_api(path: str) -> bool:
    """The JSON surfaces; the dashboard's pages (everything else) take HTML forms."""
    return path.startswith(API_PREFIXES) or path in ("/api", "/v1")


# Media uploads (multipart, up to Meta's largest file: a 100 MB document): the inbox's upload
# and the bundled emulator's Graph API media edge. Every other body keeps max_body_bytes.
MEDIA_UPLOAD_BYTES = 100 * 1024 * 1024 + 64 * 1024
_MEDIA_UPLOAD = re.compile(r"^(/api/conversations/[^/]+|/emulator/(v\d+\.\d+/)?[^/]+)/media$")


def _media_upload(method: str, path: str) -> bool:
    return method == "POST" and _MEDIA_UPLOAD.match(path) is not None


def _is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        upload = _media_upload(scope["method"], path)
        limit = MEDIA_UPLOAD_BYTES if upload else self.max
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                await error_response(path, 400, "Invalid Content-Length header")(
                    scope, receive, send
                )
                return
            if int(length) > limit:
                await self._too_large(path, scope, receive, send)
                return
        # Read the body (bounded) so chunked uploads are limited too, then replay it.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(path, scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        # Meta's webhooks are checked by signature first; their route reads the raw bytes itself.
        content_type = headers.get("content-type", "")
        if (
            body.strip()
            and not path.startswith((WEBHOOK_PREFIX, EMULATOR_PREFIX))
            and not _is_json(content_type)
            and not (_is_form(content_type) and not _is_api(path))
            and not (upload and _is_multipart(content_type))
        ):
            await error_response(
                path, 415, "Content-Type must be application/json", code="unsupported_media_type"
            )(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            path, 413, f"Request body is larger than {self.max} bytes", code="payload_too_large"
        )
        await response(scope, receive, send)


class EdgeMiddleware:
    """Everything added to a response on its way out, and the bookkeeping that needs its status."""

    def __init__(self, app: ASGIApp, owner: Any) -> None:
        self.app = app
        self.owner = owner  # the FastAPI app: state.settings, state.usage, state.sessionmaker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")  # the last one counts
        request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        state: dict[str, Any] = scope.setdefault("state", {})
        https = scope.get("scheme") == "https"
        held: list[Message] = []  # an idempotent response is held until it is stored
        started = False

        async def edge_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": self._headers(message, request_id, state, https)}
                principal = state.get("principal")
                if principal is not None and principal.api_key_id is not None:
                    self.owner.state.usage.record(principal.api_key_id, message["status"])
            if state.get("idempotency") is not None:
                held.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await self._store(state["idempotency"], held)
                    for m in held:
                        await send(m)
                    held.clear()
                return
            await send(message)

        try:
            await self.app(scope, receive, edge_send)
        except Exception:
            # Answered here rather than by Starlette's outermost handler, so that a 500 still
            # carries the request id and the security headers.
            log.error("unhandled_error", path=scope["path"], method=scope["method"], exc_info=True)
            if started:
                raise
            state.pop("idempotency", None)
            await error_response(scope["path"], 500, "Internal server error")(
                scope, receive, edge_send
            )
        finally:
            structlog.contextvars.unbind_contextvars("request_id")

    @staticmethod
    def _headers(
        message: Message, request_id: str, state: dict[str, Any], https: bool
    ) -> list[tuple[bytes, bytes]]:
        """The response's headers plus ours, where the response did not set them already."""
        headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
        names = {k.lower() for k, _ in headers}
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode("latin-1"))]
        extra += _ALWAYS
        decision = state.get("ratelimit")
        if decision is not None:
            extra += [
                (k.lower().encode(), v.encode("latin-1")) for k, v in decision.headers().items()
            ]
        if https:
            extra.append(_HSTS)
        content_type = b""
        for name, value in headers:
            if name == b"content-type":
                content_type = value  # the last one counts
        if content_type.startswith(b"text/html"):
            extra += _HTML_ONLY
        for name, value in extra:
            if name not in names:
                headers.append((name, value))
        return headers

    async def _store(self, reservation: Any, messages: list[Message]) -> None:
        start = messages[0]
        status = int(start["status"])
        body = b"".join(m.get("body", b"") for m in messages[1:])
        content_type = dict(start.get("headers", [])).get(b"content-type", b"application/json")
        try:
            async with self.owner.state.sessionmaker() as session:
                if status < 400:
                    await idempotency.complete(
                        session,
                        reservation,
                        status,
                        {"content-type": content_type.decode()},
                        body,
                        self.owner.state.idempotency_key,
                    )
                else:
                    await idempotency.release(session, reservation)
                await session.commit()
        except Exception:
            log.error("idempotency_store_failed", key=reservation.key, exc_info=True)
