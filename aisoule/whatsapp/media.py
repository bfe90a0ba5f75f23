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


def kind_of(mime_type: str) -> str | None:
    """The message type (image, video, audio, document) that carries this MIME type."""
    base = mime_type.split(";")[0].strip().lower()
    for kind, (types, _) in SUPPORTED.items():
        if base in types:
            return kind
    return None


def guess_type(link: str) -> str | None:
    path = urlparse(link).path.lower()
    for ext, mime in _EXTRA.items():
        if path.endswith(ext):
            return mime
    return mimetypes.guess_type(path)[0]


def problem(kind: str, mime_type: str | None, size: int | None, *, echo: bool = True) -> str | None:
    """Why Meta would refuse this media, or None. ``echo=False`` when the type or size came from
    the link's server: the text then names neither (a refusal never repeats a target's answer)."""
    allowed, limit = SUPPORTED[kind]
    if mime_type is not None:
        base = mime_type.split(";")[0].strip().lower()
        if base not in allowed:
            given = base if echo else "the type the link's server gives"
            return f"{kind} does not take {given}; supported: {', '.join(sorted(allowed))}"
    if size is not None and size > limit:
        this = (
            f"this one is {size / MB:.1f} MB" if echo else "the link's server gives a larger size"
        )
        return f"{kind} is limited to {limit // MB} MB; {this}"
    return None
