"""The argon2 cost of new password hashes follows the settings; the product's default is
argon2-cffi's (RFC 9106's low-memory profile). The suite runs at the lowest cost
(tests/conftest.py), so these tests are what keeps the default honest."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import argon2

from aisoule.config import Settings
from aisoule.kit import passwords
from tests.conftest import signup
from tests.servers import make_server


def test_the_default_cost_is_argon2_cffis() -> None:
    fields = Settings.model_fields
    default = (
        fields["password_hash_time_cost"].default,
        fields["password_hash_memory_kib"].default,
        fields["password_hash_parallelism"].default,
    )
    reference = argon2.PasswordHasher()
    assert default == (reference.time_cost, reference.memory_cost, reference.parallelism)
    assert tuple(passwords.Cost()) == default


def test_a_hash_made_at_one_cost_verifies_at_another() -> None:
    async def run() -> None:
        made = await passwords.hash_password("long enough pw", passwords.Cost(2, 9216, 1))
        assert made.startswith("$argon2id$v=19$m=9216,t=2,p=1$")
        assert await passwords.verify_password("long enough pw", made, passwords.Cost())
        assert not await passwords.verify_password("wrong password", made, passwords.Cost())

    asyncio.run(run())


def test_a_servers_new_hashes_use_its_settings(tmp_path: Path) -> None:
    srv = make_server(
        "sqlite",
        tmp_path,
        AISOULE_PASSWORD_HASH_TIME_COST="2",
        AISOULE_PASSWORD_HASH_MEMORY_KIB="9216",
        AISOULE_PASSWORD_HASH_PARALLELISM="1",
    )
    srv.cli("migrate")
    srv.start()
    try:
        session, _, email, _ = signup(srv)
        session.close()
    finally:
        srv.stop()
    path = srv.database_url.split("///", 1)[1]
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT password_hash FROM users WHERE email = ?", (email,)).fetchone()
    assert stored.startswith("$argon2id$v=19$m=9216,t=2,p=1$")
