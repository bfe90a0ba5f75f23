"""The input guard: no value a database cannot store, nor one that costs us to walk.

Every request body model subclasses ``InputModel``; every /api, /v1 and webhook route carries
``aisoule.kit.parameters.guard_parameters`` for its query and path parameters. Both refuse, with
a 422 that names the field as the client wrote it (its JSON path or parameter name):

- NUL and the other C0/C1 control characters (Unicode category Cc), but tab, newline and
  carriage return in bodies, where text may be multi-line (never in parameters);
- lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but no valid UTF-8);
- strings longer than ``MAX_STRING`` anywhere (fields may set a tighter ``max_length``);
- JSON nested deeper than ``MAX_DEPTH``, numbers beyond ``MAX_SAFE_INT``, NaN and infinities.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

# Integers beyond this lose precision in JavaScript clients and overflow 64-bit columns.
MAX_SAFE_INT = 2**53 - 1
# The longest string any field takes (a text body, an access token); each field may say less.
MAX_STRING = 4096
# A body, its objects and lists count as levels: {"a": {"b": [1]}} is 3 levels deep.
MAX_DEPTH = 32

_SURROGATES = "\ud800-\udfff"
# Bodies: Cc but \t \n \r; parameters: all of Cc. Both: lone surrogates.
_BODY_REFUSED = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_SURROGATES}]")
_PARAM_REFUSED = re.compile(f"[\x00-\x1f\x7f-\x9f{_SURROGATES}]")


def printable(text: str) -> str:
    """``text`` with refused characters as ``\\uXXXX``: safe to echo in an error (and to encode)."""
    return _PARAM_REFUSED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def text_problem(value: str, *, parameter: bool = False) -> str | None:
    """Why ``value`` cannot be taken, or None."""
    found = (_PARAM_REFUSED if parameter else _BODY_REFUSED).search(value)
    if found is not None:
        code = ord(found.group())
        if code == 0:
            return "must not contain NUL (\\u0000) characters"
        if 0xD800 <= code <= 0xDFFF:
            return f"must not contain a lone surrogate (\\u{code:04x}); send valid UTF-8"
        return f"must not contain control characters (here \\u{code:04x})"
    if len(value) > MAX_STRING:
        return f"must be at most {MAX_STRING} characters"
    return None


def _number_problem(value: float) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    # Floats too: PostgreSQL's jsonb gives 1e308 back as a 309-digit integer.
    if abs(value) > MAX_SAFE_INT:
        return f"numbers must be between -{MAX_SAFE_INT} and {MAX_SAFE_INT}; send larger ones as strings"
    return None


Problem = tuple[tuple[str | int, ...], str]


def find_problem(value: Any, path: tuple[str | int, ...] = (), depth: int = 1) -> Problem | None:
    """The first value in decoded JSON that the guard refuses: its path and why."""
    if isinstance(value, str):
        why = text_problem(value)
        return None if why is None else (path, why)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        why = _number_problem(value)
        return None if why is None else (path, why)
    if isinstance(value, (dict, list, tuple)):
        if depth > MAX_DEPTH:
            # Named by the field the client gave at the top: the full path would be 32 parts.
            return path[:1], f"must not be nested deeper than {MAX_DEPTH} levels"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                why = text_problem(key)
                if why is not None:
                    return (*path, printable(key)), f"field name {why}"
            found = find_problem(item, (*path, key), depth + 1)
            if found is not None:
                return found
    return None


class InputModel(BaseModel):
    """The base of every request body: unknown fields rejected, and the guard above applied to
    the raw input before any field (or union member) sees it, so the error names the JSON path
    as the client wrote it, not a pydantic union tag."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Not an object: pydantic refuses it without walking it.
        found = find_problem(value) if isinstance(value, dict) else None
        if found is not None:
            loc, why = found
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("unsafe_input", why),
                        loc=loc,
                        input=None,
                    )
                ],
            )
        return value
