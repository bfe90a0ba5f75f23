"""Ids from the outside world: a path or body string that may or may not be a UUID."""

from __future__ import annotations

import uuid


def parse_uuid(value: object) -> uuid.UUID | None:
    """The UUID ``value`` spells, or None (an unknown id is a 404 or a 422, never a 500)."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
