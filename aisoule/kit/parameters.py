"""The input guard for query and path parameters: one route dependency (see ``aisoule.api``),
kept apart from ``validation`` because services import that one and must not import FastAPI."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from aisoule.kit.validation import printable, text_problem


async def guard_parameters(request: Request) -> None:
    """Query and path parameters through the same guard (no tab or newline here either)."""
    errors: list[dict[str, Any]] = []
    for kind, items in (
        ("query", request.query_params.multi_items()),
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
