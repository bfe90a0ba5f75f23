"""Worker task of the webhooks domain. One run at a time per process: a request for another run
while one is going sets a flag, and the running loop goes round again (on PostgreSQL, other
processes share the events through SKIP LOCKED). Between rounds it pauses briefly, so that under
load a round takes many deliveries' events at once instead of one delivery's each."""

from __future__ import annotations

import asyncio

from aisoule import runtime
from aisoule.webhooks import service

ROUND_PAUSE = 0.05  # seconds

_running = False
_again = False
_again_retry = False


async def process_webhooks(mode: str = "") -> None:
    global _running, _again, _again_retry
    retry = mode == "retry"
    if _running:
        _again = True
        _again_retry = _again_retry or retry
        return
    _running = True
    try:
        while True:
            _again, _again_retry = False, False
            await service.process(runtime.current(), retry=retry)
            if not _again:
                return
            retry = _again_retry
            await asyncio.sleep(ROUND_PAUSE)
    finally:
        _running = False
