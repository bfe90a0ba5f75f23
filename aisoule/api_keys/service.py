"""API keys: minted once, stored as a peppered HMAC, looked up by it, scoped, revocable."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.api_keys.cache import KeyCache
from aisoule.api_keys.repository import APIKeyRepository
from aisoule.api_keys.schemas import STATUS_CLASS_NAMES, APIKeyCreate, KeyUsage
from aisoule.auth.principal import Principal
from aisoule.auth.scopes import DEFAULT_KEY_SCOPES
from aisoule.exceptions import Forbidden, NotFound, Unauthorized
from aisoule.kit.crypto import (
    API_KEY_PREFIX,
    api_key_is_well_formed,
    constant_time_equals,
    derive_key,
    generate_api_key,
    hmac_sha256_hex,
)
from aisoule.kit.time import utcnow
from aisoule.models import APIKey

INVALID_KEY = "Invalid API key"


def hash_key(pepper: bytes, key: str) -> str:
    return hmac_sha256_hex(pepper, key)


async def create_key(
    session: AsyncSession,
    pepper: bytes,
    *,
    workspace_id: uuid.UUID,
    data: APIKeyCreate,
    creator: Principal | None = None,
    created_by: uuid.UUID | None = None,
) -> tuple[APIKey, str]:
    scopes = [s.value for s in data.scopes] if data.scopes else list(DEFAULT_KEY_SCOPES)
    scopes = sorted(set(scopes), key=scopes.index)
    if creator is not None:  # a key, or a member whose role holds fewer scopes
        beyond = [s for s in scopes if s not in creator.scopes]
        if beyond:
            raise Forbidden(
                f"scopes: a key cannot grant scopes it does not hold ({', '.join(beyond)})",
                field="scopes",
            )
    secret = generate_api_key()
    row = APIKey(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        created_by=created_by,
        name=data.name,
        key_hash=hash_key(pepper, secret),
        prefix=secret[: len(API_KEY_PREFIX) + 4],
        last4=secret[-4:],
        scopes=scopes,
        created_at=utcnow(),
        expires_at=data.expires_at,
    )
    await APIKeyRepository(session).add(row)
    return row, secret


@dataclass(frozen=True, slots=True)
class LiveKey:
    digest: str
    id: uuid.UUID
    workspace_id: uuid.UUID
    scopes: list[str]
    last_used_at: datetime | None
    rate_limit_per_minute: int | None  # effective: the key's override, else its workspace's
    rate_limit_per_second: int | None


async def authenticate(
    session: AsyncSession, pepper: bytes, key: str, cache: KeyCache | None = None
) -> LiveKey:
    """The live key, with its effective rate-limit overrides (key first, then workspace).

    401 for a malformed, unknown, revoked or expired key. With a ``cache`` (see
    aisoule.api_keys.cache), a live key this process looked up lately is not read again.
    """
    if not api_key_is_well_formed(key):
        raise Unauthorized(INVALID_KEY, code="invalid_api_key")
    digest = hash_key(pepper, key)
    entry = cache.get(digest) if cache is not None else None
    if entry is not None:
        row, last_used_at = entry.row, entry.last_used_at
    else:
        generation = cache.generation if cache is not None else 0
        found = await APIKeyRepository(session).get_with_workspace_limits(digest)
        if found is None:
            raise Unauthorized(INVALID_KEY, code="invalid_api_key")
        row, last_used_at = found, found["last_used_at"]
        if cache is not None and row["revoked_at"] is None:
            cache.put(digest, row, generation)
    if not constant_time_equals(row["key_hash"], digest):
        raise Unauthorized(INVALID_KEY, code="invalid_api_key")
    if row["revoked_at"] is not None:
        raise Unauthorized("API key has been revoked", code="api_key_revoked")
    if row["expires_at"] is not None and row["expires_at"] <= utcnow():
        raise Unauthorized("API key has expired", code="api_key_expired")
    return LiveKey(
        digest=digest,
        id=row["id"],
        workspace_id=row["workspace_id"],
        scopes=row["scopes"],
        last_used_at=last_used_at,
        rate_limit_per_minute=row["rate_limit_per_minute"] or row["ws_per_minute"],
        rate_limit_per_second=row["rate_limit_per_second"] or row["ws_per_second"],
    )


async def get_key(session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID) -> APIKey:
    row = await APIKeyRepository(session).get(workspace_id, key_id)
    if row is None:
        raise NotFound("API key not found")
    return row


async def usage(
    session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID, days: int = 30
) -> KeyUsage:
    """Requests per UTC day and status class over the last ``days`` days (today included)."""
    row = await get_key(session, workspace_id, key_id)
    since = utcnow().date() - timedelta(days=days - 1)
    counts = {
        (u.day, u.status_class): u.count
        for u in await APIKeyRepository(session).usage_since(key_id, since)
    }
    per_day = []
    for i in range(days):
        day = since + timedelta(days=i)
        per_day.append((day, {n: counts.get((day, n), 0) for n in STATUS_CLASS_NAMES}))
    return KeyUsage(key=row, days=per_day)


async def set_limits(
    session: AsyncSession, key_id: uuid.UUID, per_minute: int | None, per_second: int | None
) -> APIKey:
    """Operator action (CLI): override one key's limits; None restores inheritance."""
    row = await APIKeyRepository(session).get_any(key_id)
    if row is None:
        raise NotFound("API key not found")
    row.rate_limit_per_minute = per_minute
    row.rate_limit_per_second = per_second
    await session.flush()
    await announce_change(session)
    return row


async def announce_change(session: AsyncSession) -> None:
    """Tell every server process to forget the keys it remembers, when this transaction
    commits: after a revocation, or a change to a key's or a workspace's limits."""
    await APIKeyRepository(session).announce_change()


def needs_touch(row: LiveKey, resolution_seconds: int) -> bool:
    return row.last_used_at is None or row.last_used_at < utcnow() - timedelta(
        seconds=resolution_seconds
    )


async def touch(session: AsyncSession, key_id: uuid.UUID, resolution_seconds: int) -> None:
    now = utcnow()
    await APIKeyRepository(session).touch(key_id, now, now - timedelta(seconds=resolution_seconds))


async def list_keys(session: AsyncSession, workspace_id: uuid.UUID) -> list[APIKey]:
    return await APIKeyRepository(session).list(workspace_id)


async def revoke_key(
    session: AsyncSession, workspace_id: uuid.UUID, key_id: uuid.UUID
) -> tuple[APIKey, bool]:
    """Revoke (idempotent): the key, and whether this call revoked it."""
    row = await get_key(session, workspace_id, key_id)
    if row.revoked_at is not None:
        return row, False
    row.revoked_at = utcnow()
    await session.flush()
    await announce_change(session)
    return row, True


def pepper(secret: str) -> bytes:
    """The HMAC pepper of stored key digests; the one place it is derived (server and CLI)."""
    return derive_key(secret, "aisoule/api-key-pepper/v1")
