"""argon2id via pwdlib, off the event loop (a hash costs tens of milliseconds of CPU). The cost
of new hashes is the caller's (users.service passes the settings' ``password_hash_*``); a hash
records its own parameters, so hashes made at another cost still verify."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from anyio.to_thread import run_sync as run_in_threadpool
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class Cost(NamedTuple):
    """argon2id's parameters for new hashes; argon2-cffi's defaults (RFC 9106, low memory)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4


@lru_cache(maxsize=4)
def _hasher(cost: Cost = Cost()) -> PasswordHash:
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
            ),
        )
    )


@lru_cache(maxsize=4)
def _dummy_hash(cost: Cost) -> str:
    return _hasher(cost).hash("aisoule-timing-equaliser")


async def hash_password(password: str, cost: Cost = Cost()) -> str:
    return await run_in_threadpool(_hasher(cost).hash, password)


async def verify_password(password: str, password_hash: str | None, cost: Cost = Cost()) -> bool:
    """Verify; with no hash (unknown account) spend the same time on a dummy made at ``cost`` so
    timing tells nothing."""
    hasher = _hasher(cost)
    if password_hash is None:
        await run_in_threadpool(hasher.verify, password, _dummy_hash(cost))
        return False
    try:
        return await run_in_threadpool(hasher.verify, password, password_hash)
    except Exception:
        return False
