"""API keys remembered by each server process, and forgotten by all of them the moment one changes.

Every API request looks its key up; that lookup was half the round trips of a contact list.
A process keeps the keys it has seen (never unknown, revoked or expired ones) only while it
listens on PostgreSQL's ``aisoule_api_keys`` channel: revoking a key, or changing a key's or a
workspace's limits, sends ``NOTIFY aisoule_api_keys`` in the same transaction, so every process
drops everything it remembers when that change commits. The process that made the change also
drops it at once, without waiting for the notification.

No listener, no cache: before the listening connection is up, after it is lost (its socket
closed, or a ping unanswered for a few seconds) and on SQLite, every request reads its key from
the database as before. Expiry is checked on every request, cached or not, and an entry is kept
for a minute at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

log = structlog.get_logger(__name__)

CHANNEL = "aisoule_api_keys"
APPLICATION_NAME = "aisoule key listener"  # in pg_stat_activity
TTL_SECONDS = 60.0
MAX_ENTRIES = 10_000
PING_SECONDS = 5.0
PING_TIMEOUT = 3.0
RETRY_SECONDS = 2.0


@dataclass(slots=True)
class Entry:
    row: Mapping[Any, Any]  # the key lookup's row (APIKeyRepository.get_with_workspace_limits)
    fetched: float  # time.monotonic()
    last_used_at: datetime | None  # advanced when this process schedules a last_used_at write


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self.generation = 0  # advanced by every invalidation
        self.listening = False

    def get(self, digest: str) -> Entry | None:
        if not self.listening:
            return None
        entry = self._entries.get(digest)
        if entry is None or time.monotonic() - entry.fetched > TTL_SECONDS:
            return None
        return entry

    def put(self, digest: str, row: Mapping[Any, Any], generation: int) -> None:
        """Remember ``row``, read when ``generation`` was current: a row read before a change
        was announced is not stored after it (it may be the old one)."""
        if not self.listening or generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = Entry(row, time.monotonic(), row["last_used_at"])

    def mark_used(self, digest: str, when: datetime) -> None:
        """A last_used_at write for this key is on its way: not due again for a while."""
        entry = self._entries.get(digest)
        if entry is not None:
            entry.last_used_at = when

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    def stop_listening(self) -> None:
        self.listening = False
        self.invalidate()


async def listen(cache: KeyCache, connect: Callable[[], Awaitable[Any]]) -> None:
    """Keep a connection LISTENing on CHANNEL while the server runs; the cache is used only
    while it is up. ``connect`` opens an asyncpg connection."""
    while True:
        conn: Any = None
        try:
            conn = await connect()
            lost = asyncio.Event()
            await conn.add_listener(CHANNEL, lambda *_: cache.invalidate())
            conn.add_termination_listener(lambda *_, lost=lost: lost.set())
            # Anything read before LISTEN took effect may have changed unannounced: start empty.
            cache.invalidate()
            cache.listening = True
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), PING_SECONDS)
                    break
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_TIMEOUT)
            log.warning("api_key_listener_lost")
        except asyncio.CancelledError:
            cache.stop_listening()
            if conn is not None:
                conn.terminate()
            raise
        except Exception as exc:  # cannot connect, or the ping failed: no cache until it can
            log.warning("api_key_listener_down", error=repr(exc))
        cache.stop_listening()
        if conn is not None:
            conn.terminate()
        await asyncio.sleep(RETRY_SECONDS)
