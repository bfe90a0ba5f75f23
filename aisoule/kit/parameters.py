"""The input guard for query and path parameters: one route dependency (see ``aisoule.api``),
kept apart from ``validation`` because services import that one and must not import FastAPI."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from aisoule.kit.validation import MAX_STRING, printable, text_problem

# What in a raw query string can decode to a character the guard refuses: a control byte (raw, or
# percent-encoded: %00-%1F, %7F) or a C1 control (U+0080-U+009F, UTF-8 C2 80-9F). A query string
# with none of these, no longer than the longest string allowed, passes without being decoded.
_MAYBE_REFUSED = re.compile(
    rb"[\x00-\x1f\x7f]|\xc2[\x80-\x9f]|%(?:[01][0-9a-fA-F]|7[fF]|[cC]2%[89][0-9a-fA-F])"
)


async def guard_parameters(request: Request) -> None:
    """Query and path parameters through the same guard (no tab or newline here either)."""
    errors: list[dict[str, Any]] = []
    raw: bytes = request.scope.get("query_string", b"")
    clean = len(raw) <= MAX_STRING and _MAYBE_REFUSED.search(raw) is None
    if clean and not request.path_params:
        return  # the common case, on every request: one regex over the raw bytes
    for kind, items in (
        ("query", [] if clean else request.query_params.multi_items()),
        ("path", list(request.path_params.items())),
    ):
        for name, value in items:
            why = text_problem(name, parameter=True)
            if why is not None:
                errors.append(_param_error(kind, printable(name), f"parameter name {why}"))
                continue
            if isinstance(value, str):
                why = text_problem(value, parameter=True)
                if why is not None:
                    errors.append(_param_error(kind, name, why))
    if errors:
        raise RequestValidationError(errors)


def _param_error(kind: str, name: str, why: str) -> dict[str, Any]:
    return {"type": "unsafe_input", "loc": (kind, name), "msg": why, "input": None}
