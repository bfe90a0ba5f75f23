"""Base for request bodies: unknown fields rejected, and no value a database cannot store."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

# Integers beyond this lose precision in JavaScript clients and overflow 64-bit columns.
MAX_SAFE_INT = 2**53 - 1


def _check(value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL (\\u0000) characters")
    elif isinstance(value, bool):
        return
    elif isinstance(value, (int, float)):
        # Floats too: PostgreSQL's jsonb gives 1e308 back as a 309-digit integer.
        if abs(value) > MAX_SAFE_INT:
            raise ValueError(
                f"numbers must be between -{MAX_SAFE_INT} and {MAX_SAFE_INT}; send larger ones as strings"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key)
            _check(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check(item)


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        _check(value)
        return value
