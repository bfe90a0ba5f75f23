"""Idempotency-Key for POST (IETF httpapi idempotency-key draft, as Stripe does it).

The reservation is written in the request's own transaction: if the request fails, it rolls back
with everything else and the key is free to be retried. A successful response is stored right after
the transaction commits and before the client gets it, then replayed for 24 hours.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.exceptions import AisouleError, Conflict, ValidationFailed
from aisoule.idempotency.repository import IdempotencyRepository
from aisoule.kit.crypto import seal, unseal
from aisoule.kit.time import utcnow
from aisoule.models import IdempotencyKey

HEADER = "Idempotency-Key"
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True, slots=True)
class Reservation:
    workspace_id: uuid.UUID
    key: str


class IdempotentReplay(AisouleError):
    """Not an error: carries the stored response to send again."""

    status_code = 200
    code = "replayed"

    def __init__(self, record: IdempotencyKey, key: bytes) -> None:
        super().__init__("replayed")
        # Plain values: the session rolls back (and expires the row) before this is rendered.
        self.response_status = record.response_status or 200
        self.body = unseal(key, record.response_body) if record.response_body else b""
        self.content_type = (record.response_headers or {}).get("content-type", "application/json")


def validate_key(value: str) -> str:
    if not _VALID.match(value):
        raise AisouleError(
            f"{HEADER}: must be 1 to 255 visible ASCII characters",
            status_code=400,
            code="invalid_idempotency_key",
            field=HEADER,
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Same request = same method, path and JSON value (key order and whitespace do not matter)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


async def reserve(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    key: str,
    print_: str,
    *,
    ttl_hours: int,
    lease_seconds: int,
    body_key: bytes,
) -> Reservation:
    """Reserve ``key`` for this request, or raise: replay (done), 409 (running), 422 (other request)."""
    repo = IdempotencyRepository(session)
    now = utcnow()
    record = await repo.get(workspace_id, key)
    if record is not None and record.expires_at <= now:
        await repo.delete(workspace_id, key)
        record = None
    if record is None:
        inserted = await repo.insert_if_absent(
            {
                "workspace_id": workspace_id,
                "key": key,
                "fingerprint": print_,
                "status": "running",
                "created_at": now,
                "locked_until": now + timedelta(seconds=lease_seconds),
                "expires_at": now + timedelta(hours=ttl_hours),
            }
        )
        if inserted:
            return Reservation(workspace_id, key)
        record = await repo.get(workspace_id, key)
        if record is None:  # pragma: no cover - reserved and released in between
            raise Conflict(
                f"{HEADER}: in use by a concurrent request; retry", code="idempotency_key_in_use"
            )
    if record.fingerprint != print_:
        raise ValidationFailed(
            f"{HEADER}: this key was already used with a different request (method, path or body)",
            code="idempotency_key_reused",
            field=HEADER,
        )
    if record.status == "done":
        raise IdempotentReplay(record, body_key)
    if record.locked_until <= now and await repo.take_over(
        workspace_id, key, record.locked_until, now + timedelta(seconds=lease_seconds)
    ):
        return Reservation(workspace_id, key)  # the first request died without an answer
    raise Conflict(
        f"{HEADER}: a request with this key is still being processed; retry later",
        code="idempotency_key_in_use",
    )


async def complete(
    session: AsyncSession,
    reservation: Reservation,
    status: int,
    headers: dict[str, Any],
    body: bytes,
    body_key: bytes,
) -> None:
    """Store the answer, encrypted: it may hold a secret (a new API key is shown exactly once)."""
    await IdempotencyRepository(session).complete(
        reservation.workspace_id, reservation.key, status, headers, seal(body_key, body)
    )


async def release(session: AsyncSession, reservation: Reservation) -> None:
    await IdempotencyRepository(session).delete(reservation.workspace_id, reservation.key)


async def purge_expired(session: AsyncSession) -> int:
    return await IdempotencyRepository(session).delete_expired(utcnow())
