"""Media Meta accepts, by message type: MIME types and size limits (Cloud API "Supported media")."""

from __future__ import annotations

import mimetypes
from urllib.parse import urlparse

MB = 1024 * 1024

SUPPORTED: dict[str, tuple[frozenset[str], int]] = {
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "audio": (
        frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
        16 * MB,
    ),
    "document": (
        frozenset(
            {
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
        100 * MB,
    ),
}

_EXTRA = {".m4a": "audio/mp4", ".amr": "audio/amr", ".aac": "audio/aac", ".3gp": "video/3gpp"}


def guess_type(link: str) -> str | None:
    path = urlparse(link).path.lower()
    for ext, mime in _EXTRA.items():
        if path.endswith(ext):
            return mime
    return mimetypes.guess_type(path)[0]


def problem(kind: str, mime_type: str | None, size: int | None) -> str | None:
    """Why Meta would refuse this media, or None."""
    allowed, limit = SUPPORTED[kind]
    if mime_type is not None:
        base = mime_type.split(";")[0].strip().lower()
        if base == "audio/ogg; codecs=opus":  # pragma: no cover - split above
            base = "audio/ogg"
        if base not in allowed:
            return f"{kind} does not take {base}; supported: {', '.join(sorted(allowed))}"
    if size is not None and size > limit:
        return f"{kind} is limited to {limit // MB} MB; this one is {size / MB:.1f} MB"
    return None
