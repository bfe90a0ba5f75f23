"""Deliver Meta-shaped webhooks to the configured URL, signed, late, and optionally messy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import structlog

from aisoule.kit.signing import sign_sha256
from aisoule.whatsapp.emulator.settings import EmulatorSettings

log = structlog.get_logger(__name__)


class WebhookSender:
    """Schedules deliveries as tasks; each POST carries ``X-Hub-Signature-256`` over its raw body."""

    def __init__(
        self,
        settings: Callable[[], EmulatorSettings],
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self._settings = settings
        self._record = record
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def cancel_pending(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def schedule(
        self, body: dict[str, Any], delay: float = 0.0, app_secret: str | None = None
    ) -> None:
        """Deliver ``body`` after ``delay`` seconds (twice, with the duplicates option), signed
        with ``app_secret`` (the number's own) or else the settings' shared one."""
        settings = self._settings()
        if not settings.webhook_url:
            return
        copies = 2 if settings.webhook_duplicates else 1
        for n in range(copies):
            task = asyncio.create_task(self._deliver(body, delay + n * 0.01, app_secret))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, body: dict[str, Any], delay: float, app_secret: str | None) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        settings = self._settings()
        url = settings.webhook_url
        if not url:
            return
        raw = orjson.dumps(body)
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(raw, app_secret or settings.app_secret),
            "User-Agent": "facebookexternalua",
        }
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for attempt in range(settings.webhook_retries + 1):
            status: int | None = None
            try:
                async with self._session.post(url, data=raw, headers=headers) as resp:
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("emulator_webhook_failed", url=url, error=repr(exc))
            self._record({"url": url, "status": status, "attempt": attempt, "body": body})
            if status is not None and 200 <= status < 300:
                return
            if attempt < settings.webhook_retries:
                await asyncio.sleep(0.2 * 2**attempt)
