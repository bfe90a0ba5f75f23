"""Live events as the stream writes them (``id``, ``event``, ``data`` of Server-Sent Events)."""

from __future__ import annotations

from typing import Any

import orjson

from aisoule.kit.time import iso_z
from aisoule.models import LiveEvent


def sse(row: LiveEvent) -> bytes:
    """One event: ``id`` the workspace's event number (send it back as Last-Event-ID), ``event``
    its kind, ``data`` a JSON object (ids and the fields that changed; fetch the rest)."""
    data: dict[str, Any] = {**row.data, "at": iso_z(row.created_at)}
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (row.seq, row.kind.encode(), orjson.dumps(data))


def comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"
