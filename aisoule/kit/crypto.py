"""Secrets: API keys with a checksum, peppered HMAC digests, session tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

API_KEY_PREFIX = "aisk_"
_RANDOM_LEN = 32  # 32 base62 characters = 190 bits
_CHECKSUM_LEN = 6  # CRC32 in base62, zero-padded (as GitHub's token format)
API_KEY_LENGTH = len(API_KEY_PREFIX) + _RANDOM_LEN + _CHECKSUM_LEN


def _base62(number: int, width: int) -> str:
    out = []
    while number:
        number, rem = divmod(number, 62)
        out.append(_BASE62[rem])
    return "".join(reversed(out)).rjust(width, "0")


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), _CHECKSUM_LEN)


def generate_api_key() -> str:
    random_part = "".join(secrets.choice(_BASE62) for _ in range(_RANDOM_LEN))
    return f"{API_KEY_PREFIX}{random_part}{_checksum(random_part)}"


def api_key_is_well_formed(key: str) -> bool:
    """Cheap offline check (prefix, length, alphabet, checksum) before any database lookup."""
    if len(key) != API_KEY_LENGTH or not key.startswith(API_KEY_PREFIX):
        return False
    body = key[len(API_KEY_PREFIX) :]
    if any(c not in _BASE62 for c in body):
        return False
    random_part, checksum = body[:_RANDOM_LEN], body[_RANDOM_LEN:]
    return hmac.compare_digest(_checksum(random_part), checksum)


def derive_key(secret: str, purpose: str) -> bytes:
    """A purpose-bound subkey of the server secret, so one leaked use does not expose another."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def hmac_sha256_hex(key: bytes, message: str) -> str:
    return hmac.digest(key, message.encode(), "sha256").hex()  # one-shot: OpenSSL's fast path


def sha256_hex(message: str) -> str:
    return hashlib.sha256(message.encode()).hexdigest()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def seal(key: bytes, plaintext: bytes) -> bytes:
    """AES-256-GCM: a random 96-bit nonce, then ciphertext and tag."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


def unseal(key: bytes, sealed: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], None)


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
