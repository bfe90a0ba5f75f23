"""Deliver Meta-shaped webhooks to the configured URL, signed, late, and optionally messy.

Ordering is deterministic: every delivery belongs to a *lane* (one conversation, or one WABA's
template events), and a lane posts its deliveries one at a time in the order they fall due,
the next one only after the previous POST was answered. Deliveries scheduled as independent
timers (as before) raced each other on a loaded machine: ``sent`` and ``delivered`` 20 ms apart
could wake together and arrive in either order, so "ordered" depended on CPU luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from aisoule.kit.signing import sign_sha256
from aisoule.whatsapp.emulator.settings import EmulatorSettings

log = structlog.get_logger(__name__)


def meta_json(body: Any) -> bytes:
    """``body`` serialised the way Meta writes webhook bodies, the bytes the signature covers.

    Meta escapes every non-ASCII character as ``\\uXXXX`` with lowercase hex digits (surrogate
    pairs beyond the BMP): "we generate the signature using an escaped unicode version of the
    payload, with lowercase hex digits ... the string äöå should be escaped to
    \\u00e4\\u00f6\\u00e5" (developers.facebook.com/docs/graph-api/webhooks/getting-started,
    "Validating Payloads"). It also escapes ``/`` as ``\\/`` (PHP-style ``json_encode``), as
    raw deliveries show (``"mime_type":"image\\/jpeg"``). A receiver that re-serialises the
    JSON instead of hashing the raw bytes fails on both, which is what this reproduces.
    """
    text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    # "/" only ever occurs inside JSON strings, so escaping every one of them is exact.
    return text.replace("/", "\\/").encode("ascii")


@dataclass
class _Lane:
    heap: list[tuple[float, int, dict[str, Any], str | None]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    posting: bool = False  # a POST is on the wire: reset lets it finish instead of cutting it
    stopped: bool = False


class WebhookSender:
    """Schedules deliveries on lanes; each POST carries ``X-Hub-Signature-256`` over its body."""

    def __init__(
        self,
        settings: Callable[[], EmulatorSettings],
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self._settings = settings
        self._record = record
        self._lanes: dict[str, _Lane] = {}
        self._seq = itertools.count()
        self._session: aiohttp.ClientSession | None = None

    async def drain_and_stop(self, grace: float = 15.0) -> None:
        """Drop what is still waiting; let a POST already on the wire finish, then return.

        After this returns no delivery scheduled before it can reach the receiver any more,
        so a reset is a clean cut rather than "wait a little and hope".
        """
        tasks = []
        for lane in self._lanes.values():
            lane.stopped = True
            lane.heap.clear()
            if lane.task is not None:
                tasks.append(lane.task)
                if not lane.posting:
                    lane.task.cancel()
        self._lanes = {}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()

    async def close(self) -> None:
        await self.drain_and_stop(grace=5.0)
        if self._session is not None:
            await self._session.close()

    def schedule(
        self,
        body: dict[str, Any],
        delay: float = 0.0,
        lane: str = "",
        app_secret: str | None = None,
    ) -> None:
        """Deliver ``body`` ``delay`` seconds from now (twice, with the duplicates option), on
        ``lane``: deliveries of one lane arrive in the order they fall due, one after another.
        Signed with ``app_secret`` (the number's own) or else the settings' shared one."""
        settings = self._settings()
        if not settings.webhook_url:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        state = self._lanes.get(lane)
        if state is None:
            state = self._lanes[lane] = _Lane()
        copies = 2 if settings.webhook_duplicates else 1
        for n in range(copies):
            heapq.heappush(state.heap, (due + n * 0.01, next(self._seq), body, app_secret))
        state.wake.set()
        if state.task is None:
            state.task = asyncio.create_task(self._run(lane, state))

    async def _run(self, key: str, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        try:
            while lane.heap and not lane.stopped:
                due = lane.heap[0][0]
                wait = due - loop.time()
                if wait > 0:
                    # Woken early when something due sooner joins the lane.
                    lane.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), wait)
                    continue
                _, _, body, secret = heapq.heappop(lane.heap)
                await self._deliver(body, secret, lane)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _deliver(self, body: dict[str, Any], app_secret: str | None, lane: _Lane) -> None:
        settings = self._settings()
        url = settings.webhook_url
        if not url:
            return
        raw = meta_json(body)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(raw, app_secret or settings.app_secret),
            "User-Agent": "facebookexternalua",
        }
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for attempt in range(settings.webhook_retries + 1):
            status: int | None = None
            lane.posting = True
            try:
                async with self._session.post(url, data=raw, headers=headers) as resp:
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("emulator_webhook_failed", url=url, error=repr(exc))
            finally:
                lane.posting = False
            self._record({"url": url, "status": status, "attempt": attempt, "body": body})
            if status is not None and 200 <= status < 300:
                return
            if lane.stopped or attempt >= settings.webhook_retries:
                return
            await asyncio.sleep(0.2 * 2**attempt)
