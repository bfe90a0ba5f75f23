"""argon2id via pwdlib, off the event loop (a hash costs tens of milliseconds of CPU)."""

from __future__ import annotations

from functools import lru_cache

from anyio.to_thread import run_sync as run_in_threadpool
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash("aisoule-timing-equaliser")


async def hash_password(password: str) -> str:
    return await run_in_threadpool(_hasher().hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Verify; with no hash (unknown account) spend the same time on a dummy so timing tells nothing."""
    if password_hash is None:
        await run_in_threadpool(_hasher().verify, password, _dummy_hash())
        return False
    try:
        return await run_in_threadpool(_hasher().verify, password, password_hash)
    except Exception:
        return False
