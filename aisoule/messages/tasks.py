"""Worker tasks of the messages domain. Tasks carry ids; the database holds the truth."""

from __future__ import annotations

import uuid

from aisoule import runtime
from aisoule.messages import service


async def send_message(message_id: str) -> None:
    await service.deliver(runtime.current(), uuid.UUID(message_id))
