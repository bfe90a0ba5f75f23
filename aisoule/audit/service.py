"""Security audit log: written in the same transaction as the action it records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aisoule.audit.repository import AuditRepository
from aisoule.audit.schemas import AuditEventType
from aisoule.kit.time import utcnow
from aisoule.models import AuditEvent


@dataclass(frozen=True, slots=True)
class Origin:
    ip: str | None
    user_agent: str | None


async def record(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    event: AuditEventType,
    origin: Origin,
    *,
    user_id: uuid.UUID | None = None,
    api_key_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await AuditRepository(session).add(
        AuditEvent(
            workspace_id=workspace_id,
            event=event.value,
            actor_user_id=user_id,
            actor_api_key_id=api_key_id,
            ip=origin.ip,
            user_agent=(origin.user_agent or "")[:300] or None,
            details=details or {},
            created_at=utcnow(),
        )
    )


async def list_page(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    event: AuditEventType | None = None,
) -> tuple[Sequence[AuditEvent], int]:
    return await AuditRepository(session).list_page(
        workspace_id, limit=limit, offset=offset, event=event.value if event else None
    )
