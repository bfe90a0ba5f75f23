"""An API key's expiry and its last-used resolution over time, at the service
(tests/harness.py's frozen clock): valid until the instant it expires, refused from then on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aisoule.api_keys import service
from aisoule.api_keys.schemas import APIKeyCreate, status_of
from aisoule.exceptions import Unauthorized
from aisoule.kit.time import Clock, utcnow
from tests.harness import Harness
from tests.servers import TEST_SECRET

PEPPER = service.pepper(TEST_SECRET)


@pytest.mark.anyio
async def test_a_key_works_until_it_expires_and_is_refused_from_then_on(
    harness: Harness, clock: Clock
) -> None:
    expires_at = utcnow() + timedelta(hours=1)
    async with harness.session() as session:
        row, secret = await service.create_key(
            session,
            PEPPER,
            workspace_id=harness.workspace_id,
            data=APIKeyCreate(name="one hour", expires_at=expires_at),
        )

    clock.advance(hours=1, seconds=-1)
    async with harness.session() as session:
        live = await service.authenticate(session, PEPPER, secret)
        assert live.id == row.id
        assert status_of(await service.get_key(session, harness.workspace_id, row.id)) == ("active")

    clock.advance(1)
    async with harness.session() as session:
        with pytest.raises(Unauthorized) as refused:
            await service.authenticate(session, PEPPER, secret)
        assert refused.value.code == "api_key_expired"
        key = await service.get_key(session, harness.workspace_id, row.id)
        assert status_of(key) == "expired"
    with pytest.raises(ValueError, match="must be in the future"):
        APIKeyCreate(name="already over", expires_at=expires_at)


@pytest.mark.anyio
async def test_last_used_is_written_at_most_once_per_resolution(
    harness: Harness, clock: Clock
) -> None:
    resolution = 60
    async with harness.session() as session:
        _, secret = await service.create_key(
            session, PEPPER, workspace_id=harness.workspace_id, data=APIKeyCreate(name="touched")
        )

    async def used() -> service.LiveKey:
        async with harness.session() as session:
            live = await service.authenticate(session, PEPPER, secret)
            if service.needs_touch(live, resolution):
                await service.touch(session, live.id, resolution)
            return live

    assert (await used()).last_used_at is None
    first = (await used()).last_used_at
    assert first == utcnow()
    clock.advance(resolution)
    assert (await used()).last_used_at == first  # within the resolution: not written again
    clock.advance(1)
    await used()
    assert (await used()).last_used_at == first + timedelta(seconds=resolution + 1)
