"""The OpenAPI document, with every error response documented in its surface's shape."""

from __future__ import annotations

from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from aisoule.auth.dependencies import AUTHENTICATES, REQUIRES_ROLE, REQUIRES_SCOPES, SECURITY
from aisoule.contacts.schemas import ErrorV1
from aisoule.kit.envelope import ErrorEnvelope

_ERRORS = {
    "400": "Malformed JSON or a bad header",
    "401": "Missing, invalid, revoked or expired credentials",
    "403": "Missing scope, CSRF token, or role",
    "404": "No such object in this workspace",
    "409": "Conflict (duplicate phone, or the Idempotency-Key is in use)",
    "413": "Body larger than 1 MiB",
    "415": "Body is not application/json",
    "422": "Invalid field; named in the body",
    "429": "Rate limit exceeded; see Retry-After",
    "503": "A dependency (database or rate limiter) is unavailable",
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed per rolling minute for this key.",
    "X-RateLimit-Remaining": "Requests left in the tighter of the minute and second windows.",
    "X-RateLimit-Reset": "Epoch seconds when that window next frees a slot (when Remaining is 0: "
    "when a request will be admitted again).",
}


def _schema(model: type[Any], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _authenticates(dependant: Dependant) -> bool:
    return getattr(dependant.call, AUTHENTICATES, False) or any(
        _authenticates(d) for d in dependant.dependencies
    )


def _add_security(app: FastAPI, spec: dict[str, Any]) -> None:
    """The security schemes on every operation that authenticates (see auth.dependencies.SECURITY),
    as FastAPI writes them for security scheme dependencies."""
    schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in SECURITY:
        schemes[scheme.scheme_name] = jsonable_encoder(
            scheme.model, by_alias=True, exclude_none=True
        )
    requirement: list[dict[str, list[str]]] = [{scheme.scheme_name: []} for scheme in SECURITY]
    # The routes as get_openapi walks them (recent FastAPI versions keep included routers lazily).
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Any = app.routes if iter_contexts is None else iter_contexts(app.routes)
    for route in routes:
        original = getattr(route, "original_route", route)
        if not (isinstance(original, APIRoute) and route.include_in_schema):
            continue
        if not _authenticates(route.dependant):
            continue
        operations = spec.get("paths", {}).get(route.path_format, {})
        scopes = sorted(_required(route.dependant, REQUIRES_SCOPES))
        roles = sorted(_required(route.dependant, REQUIRES_ROLE))
        for method in route.methods:
            operation = operations.get(method.lower())
            if operation is not None:
                operation["security"] = list(requirement)
                if scopes:
                    operation["x-required-scopes"] = scopes
                if roles:
                    operation["x-required-role"] = roles[0]


def _required(dependant: Dependant, marker: str) -> set[str]:
    """The scopes (or role) the operation's dependencies require (auth.dependencies.require)."""
    found: set[str] = set()
    value = getattr(dependant.call, marker, None)
    if isinstance(value, str):
        found.add(value)
    elif value:
        found.update(value)
    for d in dependant.dependencies:
        found |= _required(d, marker)
    return found


def _plain_optional_parameters(spec: dict[str, Any]) -> None:
    """A query parameter that may be left out (``str | None = None``) is documented by FastAPI as
    ``anyOf: [string, null]``, which ReDoc shows as "Tag (string) or Tag (null)"; a query string
    cannot carry a null anyway: document its one real type."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                kinds = schema.get("anyOf", [])
                real = [k for k in kinds if k != {"type": "null"}]
                if len(kinds) == 2 and len(real) == 1:
                    rest = {k: v for k, v in schema.items() if k != "anyOf"}
                    parameter["schema"] = {**real[0], **rest}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        _add_security(app, spec)
        _plain_optional_parameters(spec)
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        refs = {"api": _schema(ErrorEnvelope, components), "v1": _schema(ErrorV1, components)}
        for path, operations in spec.get("paths", {}).items():
            if path.startswith("/webhooks"):
                # Meta's webhooks: no key, no rate limit; signature, size and query errors.
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    # FastAPI's own 422 names the HTTPValidationError schema removed below; every
                    # webhook operation can answer the input guard's 422 (query parameters).
                    responses["422"] = {
                        "description": _ERRORS["422"],
                        "content": {"application/json": {"schema": refs["api"]}},
                    }
                    for code in ("400", "401", "403", "413", "503"):
                        responses.setdefault(
                            code,
                            {
                                "description": _ERRORS[code],
                                "content": {"application/json": {"schema": refs["api"]}},
                            },
                        )
                continue
            if not (path.startswith("/api") or path.startswith("/v1")):
                continue
            ref = refs["v1" if path.startswith("/v1") else "api"]
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for code, description in _ERRORS.items():
                    responses[code] = {
                        "description": description,
                        "content": {"application/json": {"schema": ref}},
                    }
                for code, response in responses.items():
                    if code.startswith("2") or code == "429":
                        response.setdefault("headers", {}).update(
                            {
                                k: {"description": v, "schema": {"type": "integer"}}
                                for k, v in _RATE_HEADERS.items()
                            }
                        )
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
