"""Idempotency-Key lease and expiry over time, at the service (tests/harness.py's frozen clock):
a request that died holding a key blocks it only for the lease; an answer is replayed for the
TTL, after which the key is free for any request."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from aisoule.exceptions import Conflict, ValidationFailed
from aisoule.idempotency import service
from aisoule.kit.time import Clock
from aisoule.models import IdempotencyKey
from tests.harness import Harness

BODY_KEY = b"k" * 32
FIRST = service.fingerprint("POST", "/api/contacts", b'{"name": "Asha"}')
OTHER = service.fingerprint("POST", "/api/contacts", b'{"name": "Ravi"}')


async def reserve(harness: Harness, key: str, print_: str) -> service.Reservation:
    settings = harness.runtime.settings
    async with harness.session() as session:
        return await service.reserve(
            session,
            harness.workspace_id,
            key,
            print_,
            ttl_hours=settings.idempotency_ttl_hours,
            lease_seconds=settings.idempotency_lease_seconds,
            body_key=BODY_KEY,
        )


@pytest.mark.anyio
async def test_a_key_held_by_a_request_that_died_is_free_once_its_lease_ends(
    harness: Harness, clock: Clock
) -> None:
    lease = harness.runtime.settings.idempotency_lease_seconds
    await reserve(harness, "order-1", FIRST)  # ... and the request dies: never completed

    clock.advance(lease - 1)
    with pytest.raises(Conflict) as busy:
        await reserve(harness, "order-1", FIRST)
    assert busy.value.code == "idempotency_key_in_use"

    clock.advance(1)
    taken = await reserve(harness, "order-1", FIRST)
    assert taken == service.Reservation(harness.workspace_id, "order-1")
    with pytest.raises(Conflict):  # the new holder has a full lease of its own
        await reserve(harness, "order-1", FIRST)


@pytest.mark.anyio
async def test_an_answer_is_replayed_until_the_key_expires_then_the_key_is_free(
    harness: Harness, clock: Clock
) -> None:
    ttl = harness.runtime.settings.idempotency_ttl_hours
    reservation = await reserve(harness, "order-2", FIRST)
    async with harness.session() as session:
        await service.complete(session, reservation, 201, {}, b'{"id": 1}', BODY_KEY)

    clock.advance(hours=ttl, seconds=-1)
    with pytest.raises(service.IdempotentReplay) as replay:
        await reserve(harness, "order-2", FIRST)
    assert (replay.value.response_status, replay.value.body) == (201, b'{"id": 1}')
    with pytest.raises(ValidationFailed) as reused:
        await reserve(harness, "order-2", OTHER)
    assert reused.value.code == "idempotency_key_reused"

    async with harness.session() as session:
        await service.purge_expired(session)
    assert await stored(harness, "order-2") == "done"  # not expired yet: kept

    clock.advance(1)
    async with harness.session() as session:
        await service.purge_expired(session)
    assert await stored(harness, "order-2") is None
    assert await reserve(harness, "order-2", OTHER) == service.Reservation(
        harness.workspace_id, "order-2"
    )


async def stored(harness: Harness, key: str) -> str | None:
    async with harness.session() as session:
        return await session.scalar(
            select(IdempotencyKey.status).where(
                IdempotencyKey.workspace_id == harness.workspace_id, IdempotencyKey.key == key
            )
        )
