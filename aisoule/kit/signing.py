"""HMAC-SHA256 webhook signatures in Meta's ``X-Hub-Signature-256: sha256=<hex>`` form."""

from __future__ import annotations

import hashlib
import hmac


def sign_sha256(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=`` and the hex HMAC-SHA256 under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_sha256(body: bytes, header: str | None, secret: str) -> bool:
    """Check a signature header over the raw body bytes, in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign_sha256(body, secret), header.strip())
