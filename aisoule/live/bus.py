"""How a committed live event reaches the SSE connections of every server process.

The database holds the events (aisoule.live.repository); the bus only says "workspace W has
something new", and each connection then reads what it has not sent yet. So a lost or duplicated
wake-up costs at most a delay (connections also look every ``POLL_SECONDS``), never an event.

Transports, chosen per process by the settings:

- ``postgres`` (PostgreSQL without Redis): ``pg_notify`` in the writing transaction, delivered
  by PostgreSQL at commit to a LISTEN connection in every server process;
- ``redis`` (``AISOULE_REDIS_URL`` set): PUBLISH after commit, one subscription per process;
- ``memory`` (the embedded default, SQLite): after commit, straight to this process's hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog

log = structlog.get_logger(__name__)

Mode = Literal["memory", "postgres", "redis"]
CHANNEL = "aisoule_live"  # the NOTIFY channel and the Redis channel
APPLICATION_NAME = "aisoule live listener"
POLL_SECONDS = 5.0  # a connection looks at the database this often even without a wake-up
RETRY_SECONDS = 2.0
PING_SECONDS = 5.0


class Hub:
    """This process's open connections, by workspace: each waits on its own asyncio.Event."""

    def __init__(self) -> None:
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self.feeds: dict[uuid.UUID, Any] = {}  # aisoule.live.feed: one reader per workspace

    def subscribe(self, workspace_id: uuid.UUID) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.setdefault(workspace_id, set()).add(event)
        return event

    def unsubscribe(self, workspace_id: uuid.UUID, event: asyncio.Event) -> None:
        waiters = self._waiters.get(workspace_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[workspace_id]

    def wake(self, workspace_id: uuid.UUID) -> None:
        for event in self._waiters.get(workspace_id, ()):
            event.set()

    def wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    @property
    def connections(self) -> int:
        return sum(len(w) for w in self._waiters.values())


class Bus:
    def __init__(self, mode: Mode, redis_url: str | None = None) -> None:
        self.mode: Mode = mode
        self.hub = Hub()
        self._redis_url = redis_url
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None

    @property
    def notifies_in_transaction(self) -> bool:
        return self.mode == "postgres"

    async def announce(self, workspace_id: uuid.UUID) -> None:
        """After commit (memory and redis modes): workspace W has new events."""
        if self.mode == "memory":
            self.hub.wake(workspace_id)
            return
        if self.mode == "redis":
            try:
                await self._redis_client().publish(CHANNEL, str(workspace_id))
            except Exception:  # the connections' poll picks the event up anyway
                log.warning("live_publish_failed", exc_info=True)
                self.hub.wake(workspace_id)

    def _redis_client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self._redis_url or "redis://127.0.0.1:6379/0")
        return self._redis

    def start_listening(self, connect_pg: Callable[[], Awaitable[Any]] | None) -> None:
        """In a server process: receive other processes' wake-ups (postgres or redis)."""
        if self.mode == "postgres" and connect_pg is not None:
            self._listener = asyncio.create_task(self._listen_postgres(connect_pg))
        elif self.mode == "redis":
            self._listener = asyncio.create_task(self._listen_redis())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    def _on_payload(self, payload: Any) -> None:
        if isinstance(payload, bytes):
            payload = payload.decode(errors="replace")
        try:
            self.hub.wake(uuid.UUID(str(payload)))
        except ValueError:
            log.warning("live_bad_payload", payload=str(payload)[:80])

    async def _listen_postgres(self, connect: Callable[[], Awaitable[Any]]) -> None:
        while True:
            conn: Any = None
            try:
                conn = await connect()
                lost = asyncio.Event()
                await conn.add_listener(CHANNEL, lambda *args: self._on_payload(args[-1]))
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                self.hub.wake_all()  # whatever was announced while not listening: look now
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), PING_SECONDS)
                        break
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_SECONDS)
                log.warning("live_listener_lost")
            except asyncio.CancelledError:
                if conn is not None:
                    conn.terminate()
                raise
            except Exception as exc:
                log.warning("live_listener_down", error=repr(exc))
            if conn is not None:
                conn.terminate()
            await asyncio.sleep(RETRY_SECONDS)

    async def _listen_redis(self) -> None:
        while True:
            pubsub: Any = None
            try:
                pubsub = self._redis_client().pubsub()
                await pubsub.subscribe(CHANNEL)
                self.hub.wake_all()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._on_payload(message.get("data"))
            except asyncio.CancelledError:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                raise
            except Exception as exc:
                log.warning("live_listener_down", error=repr(exc))
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(RETRY_SECONDS)


def choose(redis_url: str | None, dialect: str) -> Mode:
    if redis_url:
        return "redis"
    return "postgres" if dialect == "postgresql" else "memory"


_bus: Bus | None = None


def install(bus: Bus | None) -> None:
    global _bus
    _bus = bus


def current() -> Bus | None:
    return _bus
