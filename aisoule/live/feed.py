"""One reader of a workspace's live events per server process, shared by its SSE connections.

Without it every connection read the database on every wake-up: 200 browsers of one workspace
and 100 events a second made 20,000 queries a second (and serialised each event 200 times).
A feed reads each new event once, keeps the recent ones (already in their SSE form) and wakes
its connections; each connection keeps its own position and takes what is after it. A
connection further back than the feed keeps (a reconnect with an old Last-Event-ID) reads the
database itself until it has caught up. The guarantees are the log's (aisoule.live.repository):
events are read in number order and numbers are handed out in commit order, so every event is
sent to every connection once, in order.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aisoule.live import bus, service
from aisoule.live.schemas import sse

log = structlog.get_logger(__name__)

BATCH = 200  # events per read
KEEP = 2000  # events kept in memory per workspace (a connection further back reads the DB)
# At most one read (and one write to each connection) per this many seconds: under load each
# write carries the events of that time together, a fraction of the cost of one write per event
# per connection (measured in bench/inbox.py); a lone event is read at once.
PACE_SECONDS = 0.1


class Feed:
    def __init__(
        self, workspace_id: uuid.UUID, maker: async_sessionmaker[AsyncSession], hub: bus.Hub
    ) -> None:
        self.workspace_id = workspace_id
        self._maker = maker
        self._hub = hub
        self.users = 0
        # Every event numbered in (floor, head] is in ``events`` (number, SSE bytes), in order.
        self.floor = 0
        self.head = 0
        self._seqs: list[int] = []
        self._events: list[bytes] = []
        self.changed = asyncio.Event()  # set (and replaced) whenever events are added
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def after(self, start: int) -> tuple[list[bytes], int] | None:
        """The kept events after ``start`` and the number of the last one; None when
        ``start`` is further back than what is kept (read the database)."""
        if start < self.floor:
            return None
        i = bisect.bisect_right(self._seqs, start)
        if i == len(self._seqs):
            return [], start
        return self._events[i:], self._seqs[-1]

    async def _run(self) -> None:
        wake = self._hub.subscribe(self.workspace_id)
        try:
            while not self.ready.is_set():
                try:
                    async with self._maker() as session:
                        last, _ = await service.bounds(session, self.workspace_id)
                    self.floor = self.head = last
                    self.ready.set()
                except Exception as exc:
                    log.warning("live_feed_down", error=repr(exc))
                    await asyncio.sleep(bus.RETRY_SECONDS)
            loop = asyncio.get_running_loop()
            while True:
                wake.clear()  # before reading: a wake-up during the read is not lost
                read_at = loop.time()
                try:
                    async with self._maker() as session:
                        rows = await service.since(session, self.workspace_id, self.head, BATCH)
                except Exception as exc:  # the connections wait; the next round tries again
                    log.warning("live_feed_down", error=repr(exc))
                    await asyncio.sleep(bus.RETRY_SECONDS)
                    continue
                if rows:
                    for row in rows:
                        self._seqs.append(row.seq)
                        self._events.append(sse(row))
                    self.head = rows[-1].seq
                    if len(self._seqs) > 2 * KEEP:
                        cut = len(self._seqs) - KEEP
                        self.floor = self._seqs[cut - 1]
                        del self._seqs[:cut], self._events[:cut]
                    changed, self.changed = self.changed, asyncio.Event()
                    changed.set()
                    if len(rows) == BATCH:
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), bus.POLL_SECONDS)
                pause = read_at + PACE_SECONDS - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
        finally:
            self._hub.unsubscribe(self.workspace_id, wake)


def join(hub: bus.Hub, workspace_id: uuid.UUID, maker: async_sessionmaker[AsyncSession]) -> Feed:
    """This process's feed of the workspace (started on first use); ``leave`` when done."""
    feed: Feed | None = hub.feeds.get(workspace_id)
    if feed is None:
        feed = Feed(workspace_id, maker, hub)
        hub.feeds[workspace_id] = feed
        feed.start()
    feed.users += 1
    return feed


def leave(hub: bus.Hub, feed: Feed) -> None:
    feed.users -= 1
    if feed.users == 0 and hub.feeds.get(feed.workspace_id) is feed:
        del hub.feeds[feed.workspace_id]
        feed.stop()
